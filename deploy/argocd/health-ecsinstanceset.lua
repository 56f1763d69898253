-- Argo CD health check for ecs.multicloud.io/EcsInstanceSet
-- (argocd-cm key: resource.customizations.health.ecs.multicloud.io_EcsInstanceSet).
--
--   Healthy      status.observedGeneration == metadata.generation and readyReplicas,
--                updatedReplicas and replicas all equal spec.replicas
--   Degraded     Ready=False with a terminal reason: ChildFailed (a child failed terminally; the
--                template must change), SelectorMismatch, or any reason terminal for an EcsInstance
--   Progressing  anything else: no status yet, an older generation, being deleted, scaling
--                (ScalingUp, ScalingDown) or rolling to a new template (RollingUpdate)
-- Kept consistent with `multicloud-ecs reasons` by tests/python/test_argocd_health.py.
local terminal = {
  CreateFailed = true,
  TenantMismatch = true,
  NamespaceWithoutTenant = true,
  NetworkMismatch = true,
  ZoneMismatch = true,
  UnknownImageKey = true,
  UnknownGpuModel = true,
  NoMatchingSize = true,
  RegionRequired = true,
  ZoneRequired = true,
  InstanceTypeRequired = true,
  PasswordUnsupported = true,
  PasswordSecretNotFound = true,
  PasswordInvalid = true,
  ProviderRequired = true,
  ProviderNotFound = true,
  OwnershipMismatch = true,
  BandwidthModeImmutable = true,
  ExtensionNotAllowed = true,
  ReservedTag = true,
  ChildFailed = true,
  SelectorMismatch = true,
  AdoptionRefused = true,
}

local hs = { status = "Progressing", message = "Waiting for the operator to report status" }
if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.message = "Deleting: waiting for its instances to release their cloud resources"
  return hs
end
local status = obj.status
if status == nil then
  return hs
end

local ready = nil
if status.conditions ~= nil then
  for _, c in ipairs(status.conditions) do
    if c.type == "Ready" then
      ready = c
    end
  end
end
local function describe(c)
  local text = c.reason or ""
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

if ready ~= nil and ready.status == "False" and ready.reason ~= nil and terminal[ready.reason] then
  hs.status = "Degraded"
  hs.message = describe(ready)
  return hs
end
local generation = obj.metadata and obj.metadata.generation
if status.observedGeneration == nil or status.observedGeneration ~= generation then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end
local wanted = 1
if obj.spec ~= nil and obj.spec.replicas ~= nil then
  wanted = obj.spec.replicas
end
local current = status.replicas or 0
local readyReplicas = status.readyReplicas or 0
local updated = status.updatedReplicas or 0
if current == wanted and readyReplicas == wanted and updated == wanted then
  hs.status = "Healthy"
  hs.message = tostring(readyReplicas) .. " of " .. tostring(wanted) .. " ready"
  return hs
end
if ready ~= nil then
  hs.message = describe(ready)
else
  hs.message = tostring(readyReplicas) .. " of " .. tostring(wanted) .. " ready"
end
return hs
