-- Argo CD health check for asynctask.dev/AsyncQueue (resource_customizations).
--
--   no status yet, or a status
--   older than the spec          -> Progressing  (the operator has not applied the policy)
--   Ready=False                  -> Degraded     (the policy could not be read: why)
--   spec.paused                  -> Suspended    (paused on purpose; held tasks wait)
--   otherwise                    -> Healthy      (in flight and held counts in the message)
--
-- Written for Argo CD's Lua (5.1 semantics, gopher-lua) with only the libraries Argo CD
-- opens for checks from argocd-cm (base, table, package); tested in gopher-lua and lua5.4.
local hs = {}
local status = obj.status
local generation = obj.metadata and obj.metadata.generation

if status == nil or status.observedGeneration == nil
    or (generation ~= nil and status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the AsyncTask operator to apply the queue's policy"
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

local counts = tostring(status.inFlight or 0) .. " in flight, " .. tostring(status.held or 0) .. " held"
if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = (ready.reason or "NotReady") .. ": " .. (ready.message or "")
elseif obj.spec ~= nil and obj.spec.paused then
  hs.status = "Suspended"
  hs.message = "Paused: " .. counts
else
  hs.status = "Healthy"
  hs.message = counts
end
return hs
