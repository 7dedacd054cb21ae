/** AsyncTask's TypeScript worker SDK (wire protocol v1). */

export { Worker, type TaskHandler, type WorkerOptions } from "./worker";
export { TaskContext } from "./context";
export { TaskFailed, TaskStopped, type StopReason } from "./errors";
export { settingsFromEnv, SettingsError, type WorkerSettings } from "./settings";
export { makeLogger, type Logger } from "./logs";
export { Payload, StoredResult, type StoredResultOptions, type StoredSource } from "./stored";
export { PayloadError, type PayloadRef, type PayloadGrant, type PayloadReason } from "./payloads";
export * as protocol from "./protocol";
export * as topology from "./topology";
