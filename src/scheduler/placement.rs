//! The placement policies, pure: from what every candidate offered (stock, price, availability,
//! catalog) to the one chosen, with the reason. Ties are broken by candidate order, so the
//! same quotes always give the same choice.
//!
//! Prices are compared in one reference currency ([`to_reference`]): a quote of a
//! CloudProvider without `spec.pricing` is taken to be in it, one whose `spec.pricing.currency`
//! matches is multiplied by `toReference`, and any other is not compared — it ranks after every
//! priced candidate and cannot pass a budget (`NoExchangeRate`), with a message naming what to
//! set. The reference currency is named by a `toReference: "1"` declaration, else by the
//! currency most candidates without `spec.pricing` quote in; a tie names none, and then none
//! of those quotes is compared (nothing is guessed).

use std::collections::BTreeMap;
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

/// The hourly price of a candidate in the reference currency (see [`to_reference`]), if its
/// quote could be converted.
pub fn reference_hourly(c: &CandidateStatus) -> Option<f64> {
    c.reference_hourly.as_deref().and_then(|h| h.parse().ok())
}

/// How a CloudProvider's quotes convert into the reference currency (its `spec.pricing`).
#[derive(Clone, Debug, PartialEq)]
pub struct Rate {
    /// The currency it converts.
    pub currency: String,
    /// The worth of one unit of `currency` in the reference currency.
    pub to_reference: f64,
    /// `to_reference` as written (status shows it).
    pub written: String,
}

impl Rate {
    /// A rate from `spec.pricing`; `None` unless `to_reference` is a positive decimal.
    pub fn parse(currency: &str, to_reference: &str) -> Option<Self> {
        let factor: f64 = to_reference.trim().parse().ok()?;
        (factor.is_finite() && factor > 0.0).then(|| Self {
            currency: currency.trim().to_ascii_uppercase(),
            to_reference: factor,
            written: to_reference.trim().to_string(),
        })
    }
}

fn currency_of(c: &CandidateStatus) -> String {
    c.currency
        .as_deref()
        .unwrap_or_default()
        .trim()
        .to_ascii_uppercase()
}

/// The currencies priced candidates without a rate quote in, each once, in candidate order.
fn native_currencies(
    candidates: &[CandidateStatus],
    rates: &BTreeMap<String, Rate>,
) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for c in candidates
        .iter()
        .filter(|c| hourly(c).is_some() && !rates.contains_key(&c.provider))
    {
        let name = currency_of(c);
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The name of the reference currency the candidates compare in: the currency CloudProviders
/// declare with `toReference: "1"` (`rates` holds every provider's, by code), else the
/// currency most priced candidates without a rate quote in. `None` when nothing names it:
/// every quote converted by another rate, or a tie (declarations or quotes disagreeing as
/// often one way as the other: nothing is guessed).
pub fn reference_currency(
    candidates: &[CandidateStatus],
    rates: &BTreeMap<String, Rate>,
) -> Option<String> {
    /// The one name seen most often; `None` on a tie.
    fn most_common(names: impl Iterator<Item = String>) -> Option<String> {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for name in names.filter(|n| !n.is_empty()) {
            match counts.iter_mut().find(|(n, _)| *n == name) {
                Some((_, count)) => *count += 1,
                None => counts.push((name, 1)),
            }
        }
        counts.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
        match counts.as_slice() {
            [(_, n), (_, m), ..] if n == m => None,
            [(first, _), ..] => Some(first.clone()),
            [] => None,
        }
    }
    let declared = most_common(
        rates
            .values()
            .filter(|r| r.to_reference == 1.0)
            .map(|r| r.currency.clone()),
    );
    declared.or_else(|| {
        most_common(
            candidates
                .iter()
                .filter(|c| hourly(c).is_some() && !rates.contains_key(&c.provider))
                .map(currency_of),
        )
    })
}

/// Puts every priced candidate's hourly quote into the reference currency
/// (`referenceHourly`, `referenceCurrency`, `exchangeRate`): as it is when quoted in the
/// reference currency (or, the reference unnamed, by a provider without a rate), times
/// `toReference` when its provider's rate converts the quote's currency. Any other quote is
/// left without a reference amount — ranked after every priced candidate — and an available
/// candidate's `error` says why and what to set. `rates`: every CloudProvider's, by code.
pub fn to_reference(candidates: &mut [CandidateStatus], rates: &BTreeMap<String, Rate>) {
    let reference = reference_currency(candidates, rates);
    let named = match reference.as_deref() {
        Some(r) => format!("{r} (the reference currency)"),
        None => "the reference currency".to_string(),
    };
    let per = reference.as_deref().unwrap_or("reference");
    // Quotes without a rate in several currencies, none of them the reference: which one the
    // budget is written in is not guessed.
    let natives = native_currencies(candidates, rates);
    let ambiguous = reference.is_none() && natives.len() > 1;
    for c in candidates.iter_mut() {
        c.reference_hourly = None;
        c.reference_currency = None;
        c.exchange_rate = None;
        let Some(h) = hourly(c) else { continue };
        let quoted = currency_of(c);
        let rate = rates.get(&c.provider);
        let converted = if reference.as_deref() == Some(quoted.as_str()) {
            Ok(None)
        } else if let Some(r) = rate.filter(|r| r.currency == quoted) {
            Ok(Some(r))
        } else if reference.is_none() && rate.is_none() && !ambiguous {
            // Nothing names the reference and nothing converts it: taken as it is.
            Ok(None)
        } else if reference.is_none() && rate.is_none() {
            Err(format!(
                "not compared: candidates whose CloudProvider has no spec.pricing quote in {}, \
                 so none of them is the reference currency: declare it on a CloudProvider \
                 quoting in it (spec.pricing {{currency: <reference>, toReference: \"1\"}}) and \
                 set a rate on the others (the CloudProvider with code {}: spec.pricing \
                 {{currency: {quoted}, toReference: \"<reference per {quoted}>\"}})",
                natives.join(" and "),
                c.provider
            ))
        } else if let Some(r) = rate {
            Err(format!(
                "not compared: quoted in {quoted}, not in {named}, and the CloudProvider with code \
                 {} converts {} (spec.pricing.currency): set spec.pricing {{currency: {quoted}, \
                 toReference: \"<{per} per {quoted}>\"}} to compare it",
                c.provider, r.currency
            ))
        } else {
            Err(format!(
                "not compared: quoted in {quoted}, not in {named}, and \
                 the CloudProvider with code {} has no spec.pricing: set spec.pricing \
                 {{currency: {quoted}, toReference: \"<{per} per {quoted}>\"}} to compare it",
                c.provider
            ))
        };
        match converted {
            Ok(rate) => {
                c.reference_hourly = Some(money(h * rate.map_or(1.0, |r| r.to_reference)));
                c.reference_currency = reference.clone();
                c.exchange_rate = rate.map(|r| r.written.clone());
            }
            Err(why) => {
                // A skip's own message (stock, a refused create) stays.
                if c.available || c.error.is_none() {
                    c.error = Some(why);
                }
            }
        }
    }
}

/// A candidate's hourly price as the reasons show it: the quote, and where it was converted
/// the reference amount ("4.50 USD/h (31.95 CNY/h)"); empty when it has no price.
pub fn price_per_hour(c: &CandidateStatus) -> String {
    let Some(h) = c.hourly.as_deref() else {
        return String::new();
    };
    let quoted = match c.currency.as_deref().filter(|q| !q.is_empty()) {
        Some(q) => format!("{h} {q}/h"),
        None => format!("{h}/h"),
    };
    match (c.reference_hourly.as_deref(), c.exchange_rate.is_some()) {
        (Some(r), true) => match c.reference_currency.as_deref() {
            Some(cur) => format!("{quoted} ({r} {cur}/h)"),
            None => format!("{quoted} ({r}/h in the reference currency)"),
        },
        (Some(_), false) => quoted,
        (None, _) => format!("{quoted}, not compared (no exchange rate)"),
    }
}

/// Applies the budget (`max_hourly`, in the reference currency): an available candidate whose
/// reference price is above it becomes skipped `OverBudget`; one with a quote that could not
/// be converted becomes skipped `NoExchangeRate` (it cannot be checked). Run after
/// [`to_reference`].
pub fn apply_budget(candidates: &mut [CandidateStatus], max_hourly: Option<f64>) {
    let Some(max) = max_hourly else { return };
    for c in candidates.iter_mut().filter(|c| c.available) {
        let maximum = match c.reference_currency.as_deref() {
            Some(cur) => format!("{} {cur}", money(max)),
            None => money(max),
        };
        match (reference_hourly(c), hourly(c)) {
            (Some(r), Some(h)) if r > max => {
                let quoted = match c.currency.as_deref().filter(|q| !q.is_empty()) {
                    Some(q) => format!("{} {q}", money(h)),
                    None => money(h),
                };
                let amount = match (c.exchange_rate.as_deref(), c.reference_currency.as_deref()) {
                    (Some(rate), Some(cur)) => format!("{quoted} ({} {cur} at {rate})", money(r)),
                    (Some(rate), None) => format!("{quoted} ({} at {rate})", money(r)),
                    (None, _) => quoted,
                };
                c.available = false;
                c.skipped = Some(Reason::OverBudget.as_str().into());
                c.error = Some(format!("{amount} per hour is above the maximum {maximum}"));
            }
            (None, Some(_)) => {
                let why = c.error.take().unwrap_or_default();
                c.available = false;
                c.skipped = Some(Reason::NoExchangeRate.as_str().into());
                c.error = Some(format!(
                    "maxHourlyPrice {} cannot be checked: {why}",
                    money(max)
                ));
            }
            _ => {}
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
            // Prices in the reference currency. Unpriced candidates, and those whose quote
            // could not be converted, rank after every priced one; ties keep spec order.
            let best = available.iter().min_by(|(ia, a), (ib, b)| {
                let pa = reference_hourly(a).unwrap_or(f64::INFINITY);
                let pb = reference_hourly(b).unwrap_or(f64::INFINITY);
                pa.total_cmp(&pb).then(ia.cmp(ib))
            });
            best.map(|(i, c)| {
                let price = match price_per_hour(c) {
                    p if p.is_empty() => p,
                    p => format!(" at {p}"),
                };
                let of = if n == 1 {
                    "the only available candidate".to_string()
                } else {
                    format!("cheapest of {n} available candidates")
                };
                let not_compared: Vec<String> = available
                    .iter()
                    .filter(|(j, o)| j != i && reference_hourly(o).is_none() && hourly(o).is_some())
                    .map(|(_, o)| {
                        format!(
                            "{} {} ({})",
                            o.provider,
                            o.region,
                            o.currency.as_deref().unwrap_or("?")
                        )
                    })
                    .collect();
                let note = if not_compared.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; not compared, no exchange rate: {}",
                        not_compared.join(", ")
                    )
                };
                (
                    *i,
                    format!("{of}: {} {}{price}{note}", c.provider, c.region),
                )
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

    /// A candidate quoting in CNY, the reference currency (as [`to_reference`] leaves it).
    fn cand(provider: &str, hourly: Option<f64>, skipped: Option<Reason>) -> CandidateStatus {
        CandidateStatus {
            reference_hourly: hourly.map(money),
            reference_currency: hourly.map(|_| "CNY".into()),
            ..quote(provider, hourly, "CNY", skipped)
        }
    }

    /// A candidate as the cloud quoted it, before [`to_reference`].
    fn quote(
        provider: &str,
        hourly: Option<f64>,
        currency: &str,
        skipped: Option<Reason>,
    ) -> CandidateStatus {
        CandidateStatus {
            provider: provider.into(),
            region: format!("{}-region", provider.to_lowercase()),
            hourly: hourly.map(money),
            currency: Some(currency.into()),
            available: skipped.is_none(),
            skipped: skipped.map(|r| r.as_str().to_string()),
            ..CandidateStatus::default()
        }
    }

    fn rates(list: &[(&str, &str, &str)]) -> BTreeMap<String, Rate> {
        list.iter()
            .map(|(code, currency, to)| (code.to_string(), Rate::parse(currency, to).unwrap()))
            .collect()
    }

    /// Alibaba and Tencent in CNY, AWS in USD: the smallest number, not the cheapest price.
    fn three_clouds(aws_usd: f64) -> Vec<CandidateStatus> {
        vec![
            quote("ALIYUN", Some(34.7), "CNY", None),
            quote("TENCENT", Some(28.9), "CNY", None),
            quote("AWS", Some(aws_usd), "USD", None),
        ]
    }

    fn reason(choice: &Choice) -> &str {
        match choice {
            Choice::Chosen { reason, .. }
            | Choice::None {
                message: reason, ..
            } => reason,
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
                    message.contains("28.90 CNY per hour is above the maximum 20.00 CNY"),
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
    fn mixed_currencies_compare_once_converted() {
        // 4.50 USD is the smallest number; at 7.10 CNY per USD it is 31.95 CNY: Tencent wins.
        let mut c = three_clouds(4.5);
        to_reference(&mut c, &rates(&[("AWS", "USD", "7.10")]));
        let aws = &c[2];
        assert_eq!(
            (
                aws.reference_hourly.as_deref(),
                aws.reference_currency.as_deref(),
                aws.exchange_rate.as_deref(),
                aws.hourly.as_deref(),
                aws.currency.as_deref(),
            ),
            (
                Some("31.95"),
                Some("CNY"),
                Some("7.10"),
                Some("4.50"),
                Some("USD")
            )
        );
        // A quote in the reference currency keeps its amount, without a rate.
        assert_eq!(c[1].reference_hourly.as_deref(), Some("28.90"));
        assert_eq!(c[1].exchange_rate, None);
        assert!(c.iter().all(|c| c.error.is_none()), "{c:?}");
        let choice = choose(PlacementPolicy::Cheapest, &c);
        assert_eq!(chosen(&choice), 1, "{choice:?}");
        // A better rate (or a lower quote): AWS wins, and the reason shows both amounts.
        let mut c = three_clouds(4.5);
        to_reference(&mut c, &rates(&[("AWS", "USD", "6")]));
        let choice = choose(PlacementPolicy::Cheapest, &c);
        assert_eq!(chosen(&choice), 2);
        assert_eq!(
            reason(&choice),
            "cheapest of 3 available candidates: AWS aws-region at 4.50 USD/h (27.00 CNY/h)"
        );
        // Without AWS in the comparison nothing changes for the others.
        let mut two = three_clouds(4.5)[..2].to_vec();
        to_reference(&mut two, &rates(&[("AWS", "USD", "6")]));
        assert_eq!(chosen(&choose(PlacementPolicy::Cheapest, &two)), 1);
    }

    #[test]
    fn a_quote_without_a_rate_ranks_last_and_says_what_to_set() {
        let mut c = three_clouds(4.5);
        to_reference(&mut c, &BTreeMap::new());
        let aws = &c[2];
        assert_eq!(aws.reference_hourly, None);
        assert!(aws.available, "still a candidate, ranked last");
        let error = aws.error.as_deref().unwrap();
        assert!(
            error.contains("quoted in USD, not in CNY (the reference currency)")
                && error.contains("code AWS has no spec.pricing")
                && error
                    .contains(r#"set spec.pricing {currency: USD, toReference: "<CNY per USD>"}"#),
            "{error}"
        );
        let choice = choose(PlacementPolicy::Cheapest, &c);
        assert_eq!(
            chosen(&choice),
            1,
            "not AWS, whose 4.50 is the smallest number"
        );
        assert_eq!(
            reason(&choice),
            "cheapest of 3 available candidates: TENCENT tencent-region at 28.90 CNY/h; \
             not compared, no exchange rate: AWS aws-region (USD)"
        );
        // The only one with stock: taken, saying its price was not compared.
        c[0].available = false;
        c[1].available = false;
        let choice = choose(PlacementPolicy::Cheapest, &c);
        assert_eq!(chosen(&choice), 2);
        assert!(
            reason(&choice).ends_with("at 4.50 USD/h, not compared (no exchange rate)"),
            "{}",
            reason(&choice)
        );
        // A rate for another currency does not convert this one.
        let mut c = three_clouds(4.5);
        to_reference(&mut c, &rates(&[("AWS", "EUR", "7.80")]));
        assert_eq!(c[2].reference_hourly, None);
        let error = c[2].error.as_deref().unwrap();
        assert!(
            error.contains("converts EUR (spec.pricing.currency)"),
            "{error}"
        );
        // A skip's own message stays.
        let mut c = vec![
            quote("ALIYUN", Some(34.7), "CNY", None),
            CandidateStatus {
                error: Some("refused: OutOfStock".into()),
                ..quote("AWS", Some(4.5), "USD", Some(Reason::OutOfStock))
            },
        ];
        to_reference(&mut c, &BTreeMap::new());
        assert_eq!(c[1].error.as_deref(), Some("refused: OutOfStock"));
    }

    #[test]
    fn the_reference_currency_is_declared_or_the_most_quoted() {
        // Declared operator-wide with a rate of 1 (on any CloudProvider, even one not a
        // candidate): a lone USD quote without a rate is not taken as CNY.
        let mut alone = vec![quote("AWS", Some(4.5), "USD", None)];
        to_reference(&mut alone, &rates(&[("ALIYUN", "CNY", "1")]));
        assert_eq!(alone[0].reference_hourly, None);
        assert!(alone[0].error.as_deref().unwrap().contains("not in CNY"));
        // Undeclared, one candidate: nothing to convert.
        let mut alone = vec![quote("AWS", Some(4.5), "USD", None)];
        to_reference(&mut alone, &BTreeMap::new());
        assert_eq!(alone[0].reference_hourly.as_deref(), Some("4.50"));
        assert_eq!(alone[0].reference_currency.as_deref(), Some("USD"));
        // Undeclared, a tie between currencies: nothing is guessed, neither is compared (the
        // first in order is taken for want of a price) and both say how to declare it.
        let mut tie = vec![
            quote("AWS", Some(4.5), "USD", None),
            quote("ALIYUN", Some(34.7), "CNY", None),
        ];
        to_reference(&mut tie, &BTreeMap::new());
        assert!(tie.iter().all(|c| c.reference_hourly.is_none()), "{tie:?}");
        let error = tie[1].error.as_deref().unwrap();
        assert!(
            error.contains("quote in USD and CNY")
                && error.contains(r#"toReference: "1""#)
                && error.contains(r#"code ALIYUN: spec.pricing {currency: CNY"#),
            "{error}"
        );
        apply_budget(&mut tie, Some(100.0));
        assert!(
            tie.iter()
                .all(|c| c.skipped.as_deref() == Some("NoExchangeRate"))
        );
        // Declared: the same quotes compare.
        let mut declared = vec![
            quote("AWS", Some(4.5), "USD", None),
            quote("ALIYUN", Some(34.7), "CNY", None),
        ];
        to_reference(
            &mut declared,
            &rates(&[("ALIYUN", "CNY", "1"), ("AWS", "USD", "7.10")]),
        );
        assert_eq!(chosen(&choose(PlacementPolicy::Cheapest, &declared)), 0);
        assert_eq!(
            declared[1].exchange_rate, None,
            "no conversion of the reference itself"
        );
        assert_eq!(declared[1].reference_currency.as_deref(), Some("CNY"));
        // Every quote converted by a rate other than 1: compared, the reference unnamed.
        let mut converted = vec![
            quote("AWS", Some(4.5), "USD", None),
            quote("EU", Some(4.0), "EUR", None),
        ];
        to_reference(
            &mut converted,
            &rates(&[("AWS", "USD", "7.10"), ("EU", "EUR", "7.80")]),
        );
        assert_eq!(converted[0].reference_currency, None);
        assert_eq!(converted[1].reference_hourly.as_deref(), Some("31.20"));
        let choice = choose(PlacementPolicy::Cheapest, &converted);
        assert_eq!(chosen(&choice), 1);
        assert!(
            reason(&choice).ends_with("at 4.00 EUR/h (31.20/h in the reference currency)"),
            "{}",
            reason(&choice)
        );
    }

    #[test]
    fn the_budget_is_in_the_reference_currency() {
        // 4.50 USD would pass a raw check against 30; 31.95 CNY does not.
        let mut c = three_clouds(4.5);
        to_reference(&mut c, &rates(&[("AWS", "USD", "7.10")]));
        apply_budget(&mut c, Some(30.0));
        assert_eq!(
            c.iter().map(|c| c.available).collect::<Vec<_>>(),
            [false, true, false]
        );
        assert_eq!(c[2].skipped.as_deref(), Some("OverBudget"));
        assert_eq!(
            c[2].error.as_deref(),
            Some("4.50 USD (31.95 CNY at 7.10) per hour is above the maximum 30.00 CNY")
        );
        assert_eq!(
            c[0].error.as_deref(),
            Some("34.70 CNY per hour is above the maximum 30.00 CNY")
        );
        assert_eq!(chosen(&choose(PlacementPolicy::Cheapest, &c)), 1);
        // A quote that cannot be converted cannot be checked: refused, saying why.
        let mut c = three_clouds(4.5);
        to_reference(&mut c, &BTreeMap::new());
        apply_budget(&mut c, Some(100.0));
        assert_eq!(c[2].skipped.as_deref(), Some("NoExchangeRate"));
        let error = c[2].error.as_deref().unwrap();
        assert!(
            error.starts_with(
                "maxHourlyPrice 100.00 cannot be checked: not compared: quoted in USD"
            ) && error.contains("set spec.pricing"),
            "{error}"
        );
        // Failover passes it over too.
        let failover = choose(PlacementPolicy::Failover, &[c[2].clone(), c[0].clone()]);
        assert_eq!(chosen(&failover), 1);
        assert!(
            reason(&failover).contains("failed over past AWS aws-region (NoExchangeRate)"),
            "{}",
            reason(&failover)
        );
        // Nothing left: not reported as over budget, the message names the rate to set.
        let mut only = vec![quote("AWS", Some(4.5), "USD", None)];
        to_reference(&mut only, &rates(&[("ALIYUN", "CNY", "1")]));
        apply_budget(&mut only, Some(100.0));
        match choose(PlacementPolicy::Cheapest, &only) {
            Choice::None { reason, message } => {
                assert_eq!(reason, Reason::NoCandidateAvailable);
                assert!(message.contains("set spec.pricing"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn converted_ties_keep_candidate_order() {
        // 4.00 USD at 7.225 is 28.90 CNY, Tencent's price.
        for (aws_first, want) in [(true, "AWS"), (false, "TENCENT")] {
            let mut c = vec![
                quote("TENCENT", Some(28.9), "CNY", None),
                quote("AWS", Some(4.0), "USD", None),
            ];
            if aws_first {
                c.reverse();
            }
            to_reference(&mut c, &rates(&[("AWS", "USD", "7.225")]));
            assert_eq!(c[0].reference_hourly, c[1].reference_hourly);
            let i = chosen(&choose(PlacementPolicy::Cheapest, &c));
            assert_eq!(c[i].provider, want);
        }
    }

    #[test]
    fn rates_are_positive_decimals() {
        assert_eq!(
            Rate::parse("usd", "7.10").map(|r| r.currency),
            Some("USD".into())
        );
        assert_eq!(Rate::parse("USD", "0"), None);
        assert_eq!(Rate::parse("USD", "0.000"), None);
        assert_eq!(Rate::parse("USD", "seven"), None);
        assert_eq!(Rate::parse("USD", "1").map(|r| r.to_reference), Some(1.0));
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
