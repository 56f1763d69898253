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
use crate::scheduler::placement::hourly;

/// The available candidate with the lowest hourly price (ties: spec order).
pub fn cheapest(candidates: &[CandidateStatus]) -> Option<&CandidateStatus> {
    candidates
        .iter()
        .filter(|c| c.available)
        .filter_map(|c| hourly(c).map(|h| (h, c)))
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
                        "cheapest: {} {} at {} {}/h",
                        c.provider,
                        c.region,
                        c.hourly.as_deref().unwrap_or("?"),
                        c.currency.as_deref().unwrap_or("")
                    ),
                ),
                None => Desired::new(
                    conditions::QUOTED,
                    false,
                    Reason::QuoteFailed,
                    "no candidate could be priced with stock: see status.candidates",
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
