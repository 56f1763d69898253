-- Argo CD health check for ecs.multicloud.io/PriceQuote
-- (argocd-cm key: resource.customizations.health.ecs.multicloud.io_PriceQuote).
--
--   Healthy      Quoted=True for the current generation: status.cheapest holds the best offer
--   Degraded     Quoted=False (QuoteFailed): no candidate could be priced with stock
--   Progressing  no status yet, or quotes of an older generation
local hs = { status = "Progressing", message = "Waiting for the operator to quote" }
local status = obj.status
if status == nil then
  return hs
end
local generation = obj.metadata and obj.metadata.generation
if status.observedGeneration == nil or status.observedGeneration ~= generation then
  hs.message = "Waiting for the operator to quote generation " .. tostring(generation)
  return hs
end
local quoted = nil
if status.conditions ~= nil then
  for _, c in ipairs(status.conditions) do
    if c.type == "Quoted" then
      quoted = c
    end
  end
end
if quoted == nil then
  return hs
end
local text = quoted.reason or ""
if quoted.message ~= nil and quoted.message ~= "" then
  text = text .. ": " .. quoted.message
end
if quoted.status == "True" then
  hs.status = "Healthy"
else
  hs.status = "Degraded"
end
hs.message = text
return hs
