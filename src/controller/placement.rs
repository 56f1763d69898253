//! The cloud side of placement and price quotes: asks each candidate's cloud for stock and a
//! price (read-only calls, prices cached for their validity) and hands the answers to the pure
//! policies of [`crate::scheduler::placement`]. Shared by EcsInstance scheduling and PriceQuote.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use parking_lot::Mutex;
use tracing::debug;

use super::context::Context;
use super::mapping;
use crate::api::ecs_instance::EcsInstanceSpec;
use crate::api::placement::{Candidate, CandidateStatus, PlacementStatus};
use crate::api::{CloudProvider, Reason};
use crate::metrics::{QuoteLabels, metrics};
use crate::scheduler::{self, placement as policy};
use mce_cloud::{BandwidthMode, ChargeMode, CloudDriver, ErrorClass, Price, PriceQuery, ZoneStock};

/// How long a quote is valid (the original design's `OrderPriceService`: 3600 s).
pub const QUOTE_VALIDITY: Duration = Duration::from_secs(3600);

/// How long a stock answer is reused: a burst of instances of one shape asks each cloud once,
/// while a sell-out is seen within seconds (and a create refused for stock corrects it anyway).
pub const STOCK_REUSE: Duration = Duration::from_secs(5);

/// Answers of the cloud by key, each reused while younger than the map's `ttl`; forgotten
/// wholesale past [`Answers::MAX`] keys.
struct Answers<V> {
    ttl: Duration,
    map: Mutex<HashMap<String, (V, Instant)>>,
}

impl<V: Clone> Answers<V> {
    const MAX: usize = 10_000;

    fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            map: Mutex::default(),
        }
    }

    fn get(&self, key: &str) -> Option<V> {
        let map = self.map.lock();
        let (value, at) = map.get(key)?;
        (at.elapsed() < self.ttl).then(|| value.clone())
    }

    fn put(&self, key: String, value: V) {
        let mut map = self.map.lock();
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(key, (value, Instant::now()));
    }
}

/// Quotes by (provider code, region, zone, type, image, disk, charge, bandwidth), for their
/// validity: placing a thousand instances of one shape asks each cloud once. Stock answers
/// likewise, for [`STOCK_REUSE`].
pub struct PriceCache {
    prices: Answers<Price>,
    stock: Answers<Vec<ZoneStock>>,
}

impl Default for PriceCache {
    fn default() -> Self {
        Self {
            prices: Answers::new(QUOTE_VALIDITY),
            stock: Answers::new(STOCK_REUSE),
        }
    }
}

impl PriceCache {
    /// Where `instance_type` has stock (provider `code`), reused for [`STOCK_REUSE`].
    pub async fn stock(
        &self,
        code: &str,
        driver: &dyn CloudDriver,
        region: &str,
        zone: Option<&str>,
        instance_type: &str,
        charge: ChargeMode,
    ) -> mce_cloud::CloudResult<Vec<ZoneStock>> {
        let key = format!("{code}|{region}|{zone:?}|{instance_type}|{charge:?}");
        if let Some(zones) = self.stock.get(&key) {
            return Ok(zones);
        }
        let zones = driver
            .describe_stock(region, zone, instance_type, charge)
            .await?;
        self.stock.put(key, zones.clone());
        Ok(zones)
    }

    /// A candidate's price (provider `code`), from the cache or the cloud.
    pub async fn quote(
        &self,
        code: &str,
        driver: &dyn CloudDriver,
        query: &PriceQuery,
    ) -> mce_cloud::CloudResult<Price> {
        let key = format!("{code}|{query:?}");
        let labels = |source| QuoteLabels {
            provider: code.to_string(),
            source,
        };
        if let Some(price) = self.prices.get(&key) {
            metrics().quotes.get_or_create(&labels("cache")).inc();
            return Ok(price);
        }
        let price = driver.describe_price(query).await?;
        metrics().quotes.get_or_create(&labels("cloud")).inc();
        self.prices.put(key, price.clone());
        Ok(price)
    }
}

fn skipped(c: &Candidate, reason: Reason, message: impl Into<String>) -> CandidateStatus {
    CandidateStatus {
        provider: c.provider.clone(),
        region: c.region.clone(),
        zone: c.zone.clone(),
        available: false,
        skipped: Some(reason.as_str().to_string()),
        error: Some(message.into()),
        ..CandidateStatus::default()
    }
}

fn class_reason(class: ErrorClass) -> Reason {
    match class {
        ErrorClass::OutOfStock => Reason::OutOfStock,
        ErrorClass::QuotaExceeded => Reason::QuotaExceeded,
        ErrorClass::Authentication => Reason::AuthenticationFailed,
        ErrorClass::Throttled => Reason::Throttled,
        _ => Reason::ProviderUnavailable,
    }
}

/// What one candidate can offer the machine `spec` describes now.
async fn evaluate_one(
    ctx: &Context,
    spec: &EcsInstanceSpec,
    candidate: &Candidate,
    previous: Option<&CandidateStatus>,
    now: Timestamp,
) -> CandidateStatus {
    // A create refused here moments ago: not asked again yet.
    if let Some(p) = previous.filter(|p| policy::recently_refused(p.refused_at.as_deref(), now)) {
        return p.clone();
    }
    let Some(provider) = ctx.provider_by_code(&candidate.provider) else {
        return skipped(
            candidate,
            Reason::ProviderNotFound,
            format!("no CloudProvider has code {:?}", candidate.provider),
        );
    };
    if let Err(e) = scheduler::check_available(&provider) {
        return skipped(candidate, e.reason(), e.to_string());
    }
    match evaluate_on(ctx, spec, candidate, &provider).await {
        Ok(status) | Err(status) => status,
    }
}

async fn evaluate_on(
    ctx: &Context,
    spec: &EcsInstanceSpec,
    candidate: &Candidate,
    provider: &Arc<CloudProvider>,
) -> Result<CandidateStatus, CandidateStatus> {
    let profile = ctx
        .drivers
        .profile(provider)
        .map_err(|e| skipped(candidate, e.reason(), e.to_string()))?;
    let mut on = spec.clone();
    on.provider = Some(candidate.provider.clone());
    on.region = Some(candidate.region.clone());
    on.zone = candidate.zone.clone();
    let params = mapping::instance_params(&provider.spec, profile, &on)
        .map_err(|e| skipped(candidate, e.reason(), e.to_string()))?;
    mapping::check_tags(profile, on.tags.keys())
        .map_err(|e| skipped(candidate, e.reason(), e.to_string()))?;
    let driver = ctx
        .drivers
        .driver(provider)
        .await
        .map_err(|e| skipped(candidate, e.reason(), e.to_string()))?;
    let charge = mapping::charge_mode(spec);
    let region = params.placement.region.clone();
    // Stock: the candidate's zone, else the provider's default zone, else any zone with stock.
    let zone = match ctx
        .quotes
        .stock(
            &candidate.provider,
            driver.as_ref(),
            &region,
            candidate.zone.as_deref(),
            &params.instance_type,
            charge,
        )
        .await
    {
        Ok(zones) => {
            let open = |z: &str| zones.iter().any(|s| s.zone == z && s.available);
            if open(&params.placement.zone) {
                params.placement.zone.clone()
            } else if candidate.zone.is_none()
                && let Some(other) = zones
                    .iter()
                    .filter(|s| s.available)
                    .map(|s| s.zone.clone())
                    .min()
            {
                other
            } else {
                let mut out = skipped(
                    candidate,
                    Reason::OutOfStock,
                    format!(
                        "{} has no stock in {}",
                        params.instance_type,
                        candidate.zone.as_deref().unwrap_or(&region)
                    ),
                );
                out.instance_type = Some(params.instance_type.clone());
                return Err(out);
            }
        }
        // The cloud cannot tell before a create: the create will.
        Err(e) if e.code == "Unsupported" => params.placement.zone.clone(),
        Err(e) => return Err(skipped(candidate, class_reason(e.class), e.to_string())),
    };
    let mut status = CandidateStatus {
        provider: candidate.provider.clone(),
        region: region.clone(),
        zone: Some(zone.clone()),
        instance_type: Some(params.instance_type.clone()),
        available: true,
        ..CandidateStatus::default()
    };
    let bandwidth = spec.public_ip.as_ref().filter(|p| p.allocate).map(|p| {
        (
            p.bandwidth_mbps,
            match p.bandwidth_mode {
                crate::api::ecs_instance::BandwidthMode::Traffic => BandwidthMode::Traffic,
                crate::api::ecs_instance::BandwidthMode::Fixed => BandwidthMode::Fixed,
            },
        )
    });
    let query = PriceQuery {
        region,
        zone: Some(zone),
        instance_type: params.instance_type.clone(),
        image_id: Some(params.image_id.clone()),
        system_disk: Some(params.system_disk.clone()),
        charge,
        bandwidth,
    };
    match ctx
        .quotes
        .quote(&candidate.provider, driver.as_ref(), &query)
        .await
    {
        Ok(price) => fill_price(&mut status, &price, charge),
        // Still a candidate: it ranks after every priced one.
        Err(e) => status.error = Some(format!("no price: {e}")),
    }
    Ok(status)
}

/// Hourly, monthly and (PREPAID) whole-period figures of a quote.
pub fn fill_price(status: &mut CandidateStatus, price: &Price, charge: ChargeMode) {
    let (hourly, monthly) = if price.unit.eq_ignore_ascii_case("month") {
        (
            price.trade_price / policy::HOURS_PER_MONTH,
            price.trade_price,
        )
    } else {
        (
            price.trade_price,
            price.trade_price * policy::HOURS_PER_MONTH,
        )
    };
    status.currency = Some(price.currency.clone());
    status.hourly = Some(policy::money(hourly));
    status.monthly = Some(policy::money(monthly));
    if let ChargeMode::Prepaid { months } = charge {
        status.total_for_period = Some(policy::money(monthly * f64::from(months)));
    }
}

/// Every candidate of `candidates`, evaluated concurrently (read-only cloud calls only).
pub async fn evaluate(
    ctx: &Context,
    spec: &EcsInstanceSpec,
    candidates: &[Candidate],
    previous: Option<&PlacementStatus>,
) -> Vec<CandidateStatus> {
    let now = Timestamp::now();
    let before = |c: &Candidate| {
        previous.and_then(|p| {
            p.candidates
                .iter()
                .find(|s| s.provider == c.provider && s.region == c.region)
        })
    };
    let mut evaluated = futures::future::join_all(
        candidates
            .iter()
            .map(|c| evaluate_one(ctx, spec, c, before(c), now)),
    )
    .await;
    // Every quote in the reference currency, with the rates as they are now (not cached: a
    // changed rate counts at once).
    policy::to_reference(&mut evaluated, &exchange_rates(&ctx.providers.state()));
    debug!(candidates = evaluated.len(), "candidates evaluated");
    evaluated
}

/// The exchange rates CloudProviders declare (`spec.pricing`), by code.
pub fn exchange_rates(providers: &[Arc<CloudProvider>]) -> BTreeMap<String, policy::Rate> {
    providers
        .iter()
        .filter_map(|p| {
            let pricing = p.spec.pricing.as_ref()?;
            let rate = policy::Rate::parse(&pricing.currency, &pricing.to_reference)?;
            Some((p.spec.code.clone(), rate))
        })
        .collect()
}

/// The maximum hourly price of a placement (in the reference currency), parsed (the CRD's
/// pattern admits only decimals).
pub fn max_hourly(max: Option<&str>) -> Option<f64> {
    max.and_then(|m| m.parse().ok())
}
