-- Argo CD health check for ecs.multicloud.io/EcsInstance
-- (argocd-cm key: resource.customizations.health.ecs.multicloud.io_EcsInstance).
--
--   Healthy      Ready=True and status.observedGeneration == metadata.generation
--   Degraded     a terminal failure: phase Failed, or Ready=False with a reason the operator never
--                retries away (the spec must change) -- `Reason::is_terminal` in src/api/reason.rs
--   Progressing  anything else: no status yet, a status of an older generation, phase Pending /
--                Provisioning / Deleting, Ready=False while provisioning or waiting (Starting,
--                NetworkPending, Provisioning, Binding, ProviderPending) or on a retried condition
--                (Throttled, OutOfStock, QuotaExceeded, ProviderUnavailable, ...)
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
  hs.message = "Deleting: releasing cloud resources"
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

-- A terminal failure is reported as Degraded even for an older generation: the spec must change.
if status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = (ready ~= nil and describe(ready)) or "phase Failed"
  return hs
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
  hs.message = "Phase " .. tostring(status.phase or "unknown") .. ", no Ready condition yet"
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end
hs.message = describe(ready)
return hs
