//! PriceQuote reconciler: prices the machine on every candidate with read-only calls (stock and
//! price, prices cached for their validity), writes the quotes and the cheapest, and quotes
//! again when they expire or the spec changes. It never creates anything.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use tracing::instrument;

use super::context::Context;
use super::error::Result;
use super::placement::{QUOTE_VALIDITY, evaluate};
use crate::api::Reason;
use crate::api::conditions::{self, Desired};
use crate::api::placement::CandidateStatus;
use crate::api::price_quote::{PriceQuote, PriceQuoteStatus};
use crate::scheduler::placement::{price_per_hour, reference_hourly};

/// The available candidate with the lowest hourly price in the reference currency (ties: spec
/// order); a quote that could not be converted is never the cheapest.
pub fn cheapest(candidates: &[CandidateStatus]) -> Option<&CandidateStatus> {
    candidates
        .iter()
        .filter(|c| c.available)
        .filter_map(|c| reference_hourly(c).map(|h| (h, c)))
        .min_by(|(a, _), (b, _)| a.total_cmp(b))
        .map(|(_, c)| c)
}

#[instrument(skip_all, fields(pricequote = %format!("{}/{}", pq.namespace().unwrap_or_default(), pq.name_any())))]
pub async fn reconcile(pq: Arc<PriceQuote>, ctx: Arc<Context>) -> Result<Action> {
    let previous = pq.status.clone().unwrap_or_default();
    let generation = pq.metadata.generation;
    // Still valid for this generation: nothing to ask until it expires.
    if previous.observed_generation == generation
        && let Some(left) = previous
            .valid_until
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .and_then(|until| Duration::try_from(until.duration_since(Timestamp::now())).ok())
            .filter(|left| !left.is_zero())
    {
        return Ok(Action::requeue(left));
    }
    let (candidates, desired) = match pq.spec.machine() {
        Ok(machine) => {
            let candidates = evaluate(&ctx, &machine, &pq.spec.placement.candidates, None).await;
            let desired = match cheapest(&candidates) {
                Some(c) => Desired::new(
                    conditions::QUOTED,
                    true,
                    Reason::Quoted,
                    format!(
                        "cheapest: {} {} at {}",
                        c.provider,
                        c.region,
                        price_per_hour(c)
                    ),
                ),
                None => Desired::new(
                    conditions::QUOTED,
                    false,
                    Reason::QuoteFailed,
                    "no candidate with stock could be priced in the reference currency: see \
                     status.candidates",
                ),
            };
            (candidates, desired)
        }
        Err(e) => (
            Vec::new(),
            Desired::new(
                conditions::QUOTED,
                false,
                Reason::QuoteFailed,
                format!("the machine cannot be described: {e}"),
            ),
        ),
    };
    let now = Timestamp::now();
    let quoted = desired.status;
    let mut status = PriceQuoteStatus {
        observed_generation: generation,
        conditions: previous.conditions.clone(),
        cheapest: cheapest(&candidates).cloned(),
        candidates,
        quoted_at: Some(now.to_string()),
        valid_until: quoted.then(|| {
            let validity = jiff::SignedDuration::try_from(QUOTE_VALIDITY).unwrap_or_default();
            now.checked_add(validity).unwrap_or(now).to_string()
        }),
    };
    conditions::upsert(&mut status.conditions, &desired, generation, &Time(now));
    ctx.apply_status(pq.as_ref(), pq.status.as_ref(), &status)
        .await?;
    // Quoted: again when the prices expire; not: retry soon (a provider may come back).
    Ok(Action::requeue(if quoted {
        QUOTE_VALIDITY
    } else {
        Duration::from_secs(30)
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::scheduler::placement::{Rate, to_reference};

    fn quote(provider: &str, hourly: &str, currency: &str) -> CandidateStatus {
        CandidateStatus {
            provider: provider.into(),
            region: "r".into(),
            hourly: Some(hourly.into()),
            currency: Some(currency.into()),
            available: true,
            ..CandidateStatus::default()
        }
    }

    #[test]
    fn the_cheapest_is_compared_in_the_reference_currency() {
        let quotes = || {
            vec![
                quote("ALIYUN", "34.70", "CNY"),
                quote("TENCENT", "28.90", "CNY"),
                quote("AWS", "4.50", "USD"),
            ]
        };
        // No rate: the USD quote is never the cheapest, however small the number.
        let mut c = quotes();
        to_reference(&mut c, &BTreeMap::new());
        assert_eq!(cheapest(&c).map(|c| c.provider.as_str()), Some("TENCENT"));
        // 6 CNY per USD: 27.00 CNY.
        let mut c = quotes();
        let rates = [("AWS".to_string(), Rate::parse("USD", "6").unwrap())].into();
        to_reference(&mut c, &rates);
        let best = cheapest(&c).unwrap();
        assert_eq!(
            (best.provider.as_str(), price_per_hour(best).as_str()),
            ("AWS", "4.50 USD/h (27.00 CNY/h)")
        );
    }
}
