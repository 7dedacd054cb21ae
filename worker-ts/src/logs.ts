/** Log lines on stderr, as text or one JSON object a line (`ASYNCTASK_WORKER_LOG_FORMAT`). */

export type Level = "DEBUG" | "INFO" | "WARNING" | "ERROR";
const ORDER: Record<Level, number> = { DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40 };

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warning(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export function makeLogger(
  name: string,
  format: "text" | "json" = "text",
  level = "INFO",
  write: (line: string) => void = (line) => process.stderr.write(line + "\n"),
): Logger {
  const threshold =
    (ORDER as Record<string, number | undefined>)[level.toUpperCase()] ?? ORDER.INFO;
  const emit = (lvl: Level, message: string, fields: Record<string, unknown> = {}): void => {
    if (ORDER[lvl] < threshold) return;
    const at = new Date().toISOString();
    if (format === "json") {
      write(JSON.stringify({ time: at, level: lvl, logger: name, message, ...fields }));
    } else {
      write(`${at} ${lvl} ${name}: ${message}`);
    }
  };
  return {
    debug: (m, f) => {
      emit("DEBUG", m, f);
    },
    info: (m, f) => {
      emit("INFO", m, f);
    },
    warning: (m, f) => {
      emit("WARNING", m, f);
    },
    error: (m, f) => {
      emit("ERROR", m, f);
    },
  };
}
