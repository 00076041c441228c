-- Argo CD health of a slipway.dev ProjectEnvironment (resource.customizations.health.slipway.dev_ProjectEnvironment).
-- Ready with its image → Healthy; Failed or Stalled → Degraded; building or pending → Progressing.
local hs = { status = "Progressing", message = "Waiting for the environment image" }
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
local ready = condition("Ready")
if obj.status.phase == "Failed" or (stalled ~= nil and stalled.status == "True") then
  hs.status = "Degraded"
  hs.message = (stalled and stalled.message) or (ready and ready.message) or "The environment failed"
elseif obj.status.phase == "Ready" and obj.status.image ~= nil then
  hs.status = "Healthy"
  hs.message = "Image " .. obj.status.image
elseif ready ~= nil and ready.message ~= nil then
  hs.message = ready.message
elseif obj.status.phase ~= nil then
  hs.message = obj.status.phase
end
return hs
