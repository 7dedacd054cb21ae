-- Argo CD health check for asynctask.dev/AsyncTaskSchedule (resource_customizations).
--
--   no status yet, or a status older than the spec -> Progressing (the operator has not
--                                                     seen this version yet)
--   Ready=False (InvalidSchedule, InvalidTimeZone,
--                TaskRefused)                       -> Degraded (reason: message)
--   spec.suspend: true                              -> Suspended
--   Ready=True                                      -> Healthy (the next slot in the message)
--   anything else                                   -> Progressing
--
-- A schedule is healthy while it is served, whatever its tasks did: their own health is
-- the AsyncTask check's. Written for Argo CD's Lua (5.1 semantics, gopher-lua) with only
-- the libraries Argo CD opens for checks from argocd-cm (base, table, package).
local hs = {}
local status = obj.status
local generation = obj.metadata and obj.metadata.generation

if status == nil or status.observedGeneration == nil or status.observedGeneration == 0
    or (generation ~= nil and status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the AsyncTask operator to observe generation " .. tostring(generation or 1)
  return hs
end

local ready = nil
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    end
  end
end

if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = tostring(ready.reason) .. ": " .. tostring(ready.message)
elseif obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Suspended: no slot runs until spec.suspend is false"
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  if status.nextScheduleTime ~= nil then
    hs.message = "Next run at " .. status.nextScheduleTime
  else
    hs.message = "Scheduled"
  end
else
  hs.status = "Progressing"
  hs.message = "Waiting for the AsyncTask operator"
end
return hs
