//! The placement policies, pure: from what every candidate offered (stock, price, availability,
//! catalog) to the one chosen, with the reason. Ties are broken by candidate order, so the
//! same quotes always give the same choice.

use std::time::Duration;

use jiff::Timestamp;

use crate::api::Reason;
use crate::api::placement::{CandidateStatus, PlacementPolicy};

/// Hours in a month, for the monthly figure of an hourly price (365 × 24 / 12).
pub const HOURS_PER_MONTH: f64 = 730.0;

/// A candidate on which a create was refused for stock or quota is passed over this long.
pub const REFUSAL_MEMORY: Duration = Duration::from_secs(60);

/// The choice, or why there is none.
#[derive(Clone, Debug, PartialEq)]
pub enum Choice {
    /// Index into the candidates, and why it was chosen.
    Chosen {
        index: usize,
        reason: String,
    },
    None {
        reason: Reason,
        message: String,
    },
}

/// A price as status shows it: two decimals.
pub fn money(v: f64) -> String {
    format!("{v:.2}")
}

/// The hourly price a candidate quoted, if any.
pub fn hourly(c: &CandidateStatus) -> Option<f64> {
    c.hourly.as_deref().and_then(|h| h.parse().ok())
}

/// Applies the budget: an available candidate quoting above `max_hourly` becomes skipped.
pub fn apply_budget(candidates: &mut [CandidateStatus], max_hourly: Option<f64>) {
    let Some(max) = max_hourly else { return };
    for c in candidates.iter_mut().filter(|c| c.available) {
        if let Some(h) = hourly(c).filter(|h| *h > max) {
            c.available = false;
            c.skipped = Some(Reason::OverBudget.as_str().into());
            c.error = Some(format!(
                "{} per hour is above the maximum {}",
                money(h),
                money(max)
            ));
        }
    }
}

/// Chooses among evaluated candidates (in spec order).
pub fn choose(policy: PlacementPolicy, candidates: &[CandidateStatus]) -> Choice {
    let available: Vec<(usize, &CandidateStatus)> = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.available)
        .collect();
    let n = available.len();
    let chosen = match policy {
        // Fixed has one candidate: the named provider.
        PlacementPolicy::Fixed | PlacementPolicy::Failover => available.first().map(|(i, c)| {
            let why = if *i == 0 {
                "the first candidate is available".to_string()
            } else {
                let passed: Vec<String> = candidates[..*i]
                    .iter()
                    .map(|p| {
                        format!(
                            "{} {} ({})",
                            p.provider,
                            p.region,
                            p.skipped.as_deref().unwrap_or("unavailable")
                        )
                    })
                    .collect();
                format!("failed over past {}", passed.join(", "))
            };
            (*i, format!("{why}: {} {}", c.provider, c.region))
        }),
        PlacementPolicy::Cheapest => {
            // Unpriced candidates rank after every priced one; ties keep spec order.
            let best = available.iter().min_by(|(ia, a), (ib, b)| {
                let pa = hourly(a).unwrap_or(f64::INFINITY);
                let pb = hourly(b).unwrap_or(f64::INFINITY);
                pa.total_cmp(&pb).then(ia.cmp(ib))
            });
            best.map(|(i, c)| {
                let price = match (hourly(c), c.currency.as_deref()) {
                    (Some(h), Some(cur)) => format!(" at {} {cur}/h", money(h)),
                    (Some(h), None) => format!(" at {}/h", money(h)),
                    _ => String::new(),
                };
                let of = if n == 1 {
                    "the only available candidate".to_string()
                } else {
                    format!("cheapest of {n} available candidates")
                };
                (*i, format!("{of}: {} {}{price}", c.provider, c.region))
            })
        }
    };
    match chosen {
        Some((index, reason)) => Choice::Chosen { index, reason },
        None => none_available(candidates),
    }
}

fn none_available(candidates: &[CandidateStatus]) -> Choice {
    let skipped: Vec<String> = candidates
        .iter()
        .map(|c| {
            format!(
                "{} {}: {}",
                c.provider,
                c.region,
                c.error
                    .as_deref()
                    .or(c.skipped.as_deref())
                    .unwrap_or("unavailable")
            )
        })
        .collect();
    let over_budget = candidates
        .iter()
        .any(|c| c.skipped.as_deref() == Some(Reason::OverBudget.as_str()));
    let only_budget = over_budget
        && candidates.iter().all(|c| {
            matches!(
                c.skipped.as_deref(),
                Some(r) if r == Reason::OverBudget.as_str()
            ) || c.skipped.as_deref() == Some(Reason::OutOfStock.as_str())
        });
    let reason = if only_budget {
        Reason::OverBudget
    } else {
        Reason::NoCandidateAvailable
    };
    Choice::None {
        reason,
        message: format!(
            "no candidate can take the instance now: {}",
            skipped.join("; ")
        ),
    }
}

/// Whether a create refused on this candidate at `refused_at` still makes it passed over.
pub fn recently_refused(refused_at: Option<&str>, now: Timestamp) -> bool {
    let Some(at) = refused_at.and_then(|t| t.parse::<Timestamp>().ok()) else {
        return false;
    };
    let memory = jiff::SignedDuration::try_from(REFUSAL_MEMORY).unwrap_or_default();
    now.duration_since(at) < memory
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(provider: &str, hourly: Option<f64>, skipped: Option<Reason>) -> CandidateStatus {
        CandidateStatus {
            provider: provider.into(),
            region: format!("{}-region", provider.to_lowercase()),
            hourly: hourly.map(money),
            currency: Some("CNY".into()),
            available: skipped.is_none(),
            skipped: skipped.map(|r| r.as_str().to_string()),
            ..CandidateStatus::default()
        }
    }

    fn chosen(choice: &Choice) -> usize {
        match choice {
            Choice::Chosen { index, .. } => *index,
            other => panic!("expected a choice: {other:?}"),
        }
    }

    #[test]
    fn cheapest_takes_the_lowest_price_and_breaks_ties_by_order() {
        let table: &[(&[CandidateStatus], usize)] = &[
            (
                &[cand("A", Some(34.7), None), cand("T", Some(28.9), None)],
                1,
            ),
            (
                &[cand("A", Some(8.43), None), cand("T", Some(9.1), None)],
                0,
            ),
            // Tie: spec order.
            (
                &[cand("A", Some(10.0), None), cand("T", Some(10.0), None)],
                0,
            ),
            // The cheaper one has no stock.
            (
                &[
                    cand("A", Some(34.7), None),
                    cand("T", Some(28.9), Some(Reason::OutOfStock)),
                ],
                0,
            ),
            // An unpriced candidate ranks last.
            (&[cand("A", None, None), cand("T", Some(99.0), None)], 1),
        ];
        for (candidates, want) in table {
            let choice = choose(PlacementPolicy::Cheapest, candidates);
            assert_eq!(chosen(&choice), *want, "{candidates:?}");
        }
        let Choice::Chosen { reason, .. } = choose(
            PlacementPolicy::Cheapest,
            &[cand("A", Some(34.7), None), cand("T", Some(28.9), None)],
        ) else {
            unreachable!()
        };
        assert_eq!(
            reason,
            "cheapest of 2 available candidates: T t-region at 28.90 CNY/h"
        );
    }

    #[test]
    fn failover_takes_the_first_available_in_order() {
        let c = [
            cand("A", Some(1.0), Some(Reason::OutOfStock)),
            cand("T", Some(50.0), None),
            cand("X", Some(2.0), None),
        ];
        let choice = choose(PlacementPolicy::Failover, &c);
        assert_eq!(chosen(&choice), 1);
        let Choice::Chosen { reason, .. } = choice else {
            unreachable!()
        };
        assert!(
            reason.contains("failed over past A a-region (OutOfStock)"),
            "{reason}"
        );
    }

    #[test]
    fn nothing_available_says_why() {
        let sold_out = [
            cand("A", Some(1.0), Some(Reason::OutOfStock)),
            cand("T", None, Some(Reason::ProviderUnavailable)),
        ];
        for policy in [PlacementPolicy::Cheapest, PlacementPolicy::Failover] {
            match choose(policy, &sold_out) {
                Choice::None { reason, message } => {
                    assert_eq!(reason, Reason::NoCandidateAvailable);
                    assert!(message.contains("A a-region: OutOfStock"), "{message}");
                }
                other => panic!("{other:?}"),
            }
        }
        let mut priced = [cand("A", Some(34.7), None), cand("T", Some(28.9), None)];
        apply_budget(&mut priced, Some(20.0));
        assert!(priced.iter().all(|c| !c.available));
        match choose(PlacementPolicy::Cheapest, &priced) {
            Choice::None { reason, message } => {
                assert_eq!(reason, Reason::OverBudget);
                assert!(
                    message.contains("28.90 per hour is above the maximum 20.00"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        // Within budget: untouched.
        let mut ok = [cand("A", Some(34.7), None)];
        apply_budget(&mut ok, Some(40.0));
        assert!(ok[0].available);
    }

    #[test]
    fn refusals_are_remembered_for_a_minute() {
        let now: Timestamp = "2026-11-27T10:01:00Z".parse().unwrap();
        assert!(recently_refused(Some("2026-11-27T10:00:30Z"), now));
        assert!(!recently_refused(Some("2026-11-27T09:59:00Z"), now));
        assert!(!recently_refused(None, now));
        assert!(!recently_refused(Some("garbage"), now));
    }
}
