-- Argo CD health check for asynctask.dev/AsyncTask (resource_customizations).
--
--   Pending, Processing          -> Progressing  (queued or running; progress in the message)
--   Succeeded                    -> Healthy
--   Failed, Error, TimedOut      -> Degraded     (the error's reason and message)
--   Cancelled                    -> Degraded     (see below)
--   no phase yet, or a status
--   older than the spec          -> Progressing  (the operator has not seen it yet; until
--                                                 its first write the status is only
--                                                 the CRD's default {observedGeneration: 0})
--   any other phase              -> Unknown
--
-- Cancelled is Degraded, not Suspended: Suspended means "paused, may resume", and a
-- cancelled task never runs again (spec.cancel cannot be undone). It did not do what its
-- manifest asked, which is also what the kstatus conditions say (Stalled=True), so Argo CD
-- and Flux agree.
--
-- Written for Argo CD's Lua (5.1 semantics, gopher-lua) with only the libraries Argo CD
-- opens for checks from argocd-cm (base, table, package); tested in gopher-lua and lua5.4.
local hs = {}

local function describe(status, fallback)
  if status.message ~= nil and status.message ~= "" then
    return status.message
  end
  return fallback
end

if obj.status == nil or obj.status.phase == nil or obj.status.phase == "" then
  hs.status = "Progressing"
  hs.message = "Waiting for the AsyncTask operator to queue the task"
  return hs
end

local status = obj.status
local phase = status.phase
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation
    and phase ~= "Succeeded" and phase ~= "Failed" and phase ~= "Error"
    and phase ~= "TimedOut" and phase ~= "Cancelled" then
  hs.status = "Progressing"
  hs.message = "Waiting for the AsyncTask operator to observe generation " .. tostring(generation)
  return hs
end

if phase == "Pending" then
  hs.status = "Progressing"
  hs.message = "Pending: " .. describe(status, "queued, waiting for a worker")
elseif phase == "Processing" then
  hs.status = "Progressing"
  local progress = status.progress or 0
  hs.message = "Processing (" .. tostring(progress) .. "%): " .. describe(status, "running")
elseif phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = "Succeeded"
elseif phase == "Failed" or phase == "Error" or phase == "TimedOut" or phase == "Cancelled" then
  hs.status = "Degraded"
  local err = status.error
  if err ~= nil and err.reason ~= nil then
    hs.message = phase .. " (" .. err.reason .. "): " .. (err.message or describe(status, ""))
  else
    hs.message = phase .. ": " .. describe(status, "the task did not succeed")
  end
else
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. tostring(phase)
end
return hs
