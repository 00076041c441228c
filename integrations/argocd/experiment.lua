-- Argo CD health of a slipway.dev Experiment (resource.customizations.health.slipway.dev_Experiment).
-- Concluded → Healthy (with the winner); Stopped → Suspended; Failed or Stalled → Degraded; else Progressing.
local hs = { status = "Progressing", message = "Waiting for the experiment to start" }
if obj.status == nil then
  return hs
end
local function condition(t)
  for _, c in ipairs(obj.status.conditions or {}) do
    if c.type == t then
      return c
    end
  end
  return nil
end
local stalled = condition("Stalled")
local phase = obj.status.phase
if phase == "Failed" or (stalled ~= nil and stalled.status == "True") then
  hs.status = "Degraded"
  hs.message = (stalled and stalled.message) or "The experiment failed"
elseif phase == "Concluded" then
  hs.status = "Healthy"
  hs.message = obj.status.winner and ("Winner: " .. obj.status.winner) or "Concluded"
elseif phase == "Stopped" then
  hs.status = "Suspended"
  hs.message = "Stopped"
elseif phase ~= nil then
  hs.message = phase
end
return hs
