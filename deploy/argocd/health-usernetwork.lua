-- Argo CD health check for ecs.multicloud.io/UserNetwork
-- (argocd-cm key: resource.customizations.health.ecs.multicloud.io_UserNetwork).
--
--   Healthy      Ready=True and status.observedGeneration == metadata.generation
--   Degraded     Ready=False with a reason that needs a spec (or namespace/provider) change:
--                NetworkCreateFailed (the cloud refused the request) and the input reasons shared
--                with EcsInstance (TenantMismatch, ProviderNotFound, ...)
--   Progressing  anything else: no status yet, an older generation, Ready=False while the VPC
--                comes up (Provisioning), waiting (ProviderPending, InUse while being deleted) or
--                on a retried condition (Throttled, QuotaExceeded, ProviderUnavailable, ...)
-- Kept consistent with `multicloud-ecs reasons` by tests/python/test_argocd_health.py.
local terminal = {
  NetworkCreateFailed = true,
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
  hs.message = "Deleting: waiting for its instances to go, then releasing the VPC"
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
if ready == nil then
  hs.message = "No Ready condition yet"
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end
hs.message = describe(ready)
return hs
