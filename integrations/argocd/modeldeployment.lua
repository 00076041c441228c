-- Argo CD health of a slipway.dev ModelDeployment (resource.customizations.health.slipway.dev_ModelDeployment).
-- From the controller's own conditions (kstatus): Stalled → Degraded, a pause → Suspended, Ready → Healthy,
-- anything else (including a generation the controller has not seen yet) → Progressing.
local hs = { status = "Progressing", message = "Waiting for the Slipway controller" }
if obj.status == nil then
  return hs
end
local function condition(t)
  if obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == t then
      return c
    end
  end
  return nil
end
if obj.metadata.generation ~= nil and (obj.status.observedGeneration == nil or obj.status.observedGeneration < obj.metadata.generation) then
  hs.message = "Waiting for the controller to observe generation " .. tostring(obj.metadata.generation)
  return hs
end
local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.reason .. ": " .. (stalled.message or "")
  return hs
end
if obj.status.phase == "Paused" then
  hs.status = "Suspended"
  local ready = condition("Ready")
  hs.message = (ready ~= nil and ready.message) or "The rollout is paused"
  return hs
end
local ready = condition("Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end
local reconciling = condition("Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = reconciling.message or reconciling.reason
elseif ready ~= nil then
  hs.message = ready.message or ready.reason
end
return hs
