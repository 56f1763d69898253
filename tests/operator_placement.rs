//! Multi-cloud placement end to end: the operator as a real process, a real control plane, and
//! one emulator serving Alibaba Cloud and Tencent Cloud at different prices. Cheapest lands on
//! the cheaper cloud and fails over when it sells out; nothing lands while every candidate is
//! sold out, and the instance lands by itself once stock returns; a budget below every quote is
//! refused; a PriceQuote prices both clouds without a single write call. With AWS (quoting in
//! USD) as a third candidate, prices compare in one reference currency: a USD quote without an
//! exchange rate ranks last and says what to set, and the CloudProvider's rate decides whether
//! AWS's smallest number is the cheapest price.

use std::collections::BTreeMap;

use mce_emulator::model::{PriceTable, StockEntry};
use mce_testkit::prelude::*;
use multicloud_ecs::api::EcsInstance;
use serde_json::{Value, json};

/// Cloud actions that change something: a PriceQuote must make none of them.
fn writes(calls: &BTreeMap<String, u64>) -> u64 {
    const READ_PREFIXES: [&str; 4] = ["Describe", "Inquiry", "Get", "List"];
    calls
        .iter()
        .filter(|(action, _)| !READ_PREFIXES.iter().any(|p| action.starts_with(p)))
        .map(|(_, n)| n)
        .sum()
}

fn placement(policy: &str, aliyun: &str, tencent: &str, extra: Value) -> Value {
    let mut p = json!({
        "policy": policy,
        // Zones given: selling out a zone sells out the candidate (without a zone, placement
        // would move on to another zone of the region with stock).
        "candidates": [
            {"provider": aliyun, "region": ALIYUN.region, "zone": ALIYUN.zone},
            {"provider": tencent, "region": TENCENT.region, "zone": TENCENT.zone},
        ],
    });
    merge(&mut p, extra);
    p
}

fn gpu_box(placement: Value) -> Value {
    json!({
        "provider": null,
        "region": null,
        "imageKey": "ubuntu-20.04",
        "gpuModel": "A100",
        "placement": placement,
    })
}

fn placed(i: &EcsInstance) -> Option<(String, String)> {
    let p = i.status.as_ref()?.placement.as_ref()?;
    Some((p.provider.clone()?, p.instance_type.clone()?))
}

fn sold_out(instance_type: &str, zone: &str) -> StockEntry {
    StockEntry {
        instance_type: instance_type.into(),
        zone: zone.into(),
        available: Some(0),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cheapest_places_on_the_cheaper_cloud_and_fails_over_when_it_sells_out() {
    let mut env = Env::start("placement").await;
    let ns = env.ns.name.clone();
    let aliyun = env.code.clone();
    let tencent = env.extra_provider_on(&TENCENT, false).await;
    let tencent_name = format!("{}{}", PROVIDER_PREFIX, tencent.to_lowercase());
    env.wait_provider_available(&tencent_name).await;
    let state = env.emulator.state().clone();

    // 1. Both have stock: Tencent's A100 (GT4) is the cheaper.
    env.create_instance(
        "cheap-1",
        "user-p",
        gpu_box(placement("Cheapest", &aliyun, &tencent, json!({}))),
    )
    .await;
    let first = env.wait_ready(&ns, "cheap-1").await;
    assert_eq!(
        placed(&first),
        Some((tencent.clone(), TENCENT.gpu_type("A100").to_string()))
    );
    let status = first.status.clone().unwrap();
    let p = status.placement.clone().unwrap();
    assert!(
        p.reason.starts_with("cheapest of 2 available candidates"),
        "{}",
        p.reason
    );
    assert_eq!(p.candidates.len(), 2);
    assert!(
        p.candidates
            .iter()
            .all(|c| c.available && c.hourly.is_some())
    );
    let price = status.price.clone().expect("status.price");
    assert_eq!(price.currency, "CNY");
    assert_eq!(Some(&price.hourly), p.candidates[1].hourly.as_ref());
    assert_eq!(status.provider.as_deref(), Some(tencent.as_str()));
    assert_eq!(status.region.as_deref(), Some(TENCENT.region));
    assert!(status.instance_id.as_deref().unwrap().starts_with("ins-"));
    let scheduled = condition(&first, "Scheduled").cloned().unwrap();
    assert_eq!(
        (scheduled.status.as_str(), scheduled.reason.as_str()),
        ("True", "Scheduled")
    );

    // 2. The cheaper one sold out: the next instance lands on Alibaba, saying why.
    state.set_stock(&[sold_out(TENCENT.gpu_type("A100"), TENCENT.zone)]);
    env.create_instance(
        "cheap-2",
        "user-p",
        gpu_box(placement("Cheapest", &aliyun, &tencent, json!({}))),
    )
    .await;
    let second = env.wait_ready(&ns, "cheap-2").await;
    assert_eq!(
        placed(&second),
        Some((aliyun.clone(), ALIYUN.gpu_type("A100").to_string()))
    );
    let p = second.status.clone().unwrap().placement.unwrap();
    assert_eq!(
        p.candidates[1].skipped.as_deref(),
        Some("OutOfStock"),
        "{p:?}"
    );

    // 2b. A candidate without a zone moves to another zone of its region with stock.
    env.create_instance(
        "zone-hop",
        "user-p",
        gpu_box(json!({
            "policy": "Failover",
            "candidates": [{"provider": tencent, "region": TENCENT.region}],
        })),
    )
    .await;
    let hopped = env.wait_ready(&ns, "zone-hop").await.status.unwrap();
    let zone = hopped.zone.clone().unwrap();
    assert!(
        zone.starts_with(TENCENT.region) && zone != TENCENT.zone,
        "{zone}"
    );

    // 3. Everything sold out: nothing is created, the reason says so; stock back → it lands.
    let instances_before = count(&env.cloud(), "instances");
    state.set_stock(&[
        sold_out(TENCENT.gpu_type("A100"), TENCENT.zone),
        sold_out(ALIYUN.gpu_type("A100"), ALIYUN.zone),
    ]);
    env.create_instance(
        "cheap-3",
        "user-p",
        gpu_box(placement("Failover", &aliyun, &tencent, json!({}))),
    )
    .await;
    let waiting = env
        .wait_instance(&ns, "cheap-3", "NoCandidateAvailable", |i| {
            let c = condition(i, "Scheduled")?;
            (c.status == "False" && c.reason == "NoCandidateAvailable").then(|| c.clone())
        })
        .await;
    assert!(waiting.message.contains("no stock"), "{}", waiting.message);
    env.wait_warning(&ns, "cheap-3", "NoCandidateAvailable")
        .await;
    assert_eq!(count(&env.cloud(), "instances"), instances_before);
    // `None`: unlimited again.
    state.set_stock(&[
        StockEntry {
            available: None,
            ..sold_out(TENCENT.gpu_type("A100"), TENCENT.zone)
        },
        StockEntry {
            available: None,
            ..sold_out(ALIYUN.gpu_type("A100"), ALIYUN.zone)
        },
    ]);
    let third = env.wait_ready(&ns, "cheap-3").await;
    // Failover takes the first candidate in order once it has stock.
    assert_eq!(placed(&third).map(|p| p.0), Some(aliyun.clone()));

    // 4. A budget below every quote.
    env.create_instance(
        "too-dear",
        "user-p",
        gpu_box(placement(
            "Cheapest",
            &aliyun,
            &tencent,
            json!({"maxHourlyPrice": "1"}),
        )),
    )
    .await;
    let refused = env
        .wait_instance(&ns, "too-dear", "OverBudget", |i| {
            let c = condition(i, "Ready")?;
            (c.status == "False" && c.reason == "OverBudget").then(|| c.clone())
        })
        .await;
    assert!(
        refused.message.contains("above the maximum 1.00"),
        "{}",
        refused.message
    );
    assert!(
        env.instances()
            .get("too-dear")
            .await
            .unwrap()
            .status
            .unwrap()
            .instance_id
            .is_none()
    );
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_price_quote_prices_both_clouds_without_writing() {
    let mut env = Env::start("pricequote").await;
    let ns = env.ns.name.clone();
    let aliyun = env.code.clone();
    let tencent = env.extra_provider_on(&TENCENT, false).await;
    let tencent_name = format!("{}{}", PROVIDER_PREFIX, tencent.to_lowercase());
    env.wait_provider_available(&tencent_name).await;
    let before = effective_calls(env.emulator.state());

    env.create(
        &ns,
        json!({
            "apiVersion": API_VERSION, "kind": "PriceQuote",
            "metadata": {"name": "a100"},
            "spec": {
                "imageKey": "ubuntu-20.04",
                "gpuModel": "A100",
                "publicIp": {"allocate": true, "bandwidthMbps": 10},
                "placement": placement("Cheapest", &aliyun, &tencent, json!({})),
            },
        }),
    )
    .await
    .expect("create PriceQuote");
    let api = kube::Api::<multicloud_ecs::api::price_quote::PriceQuote>::namespaced(
        env.client.clone(),
        &ns,
    );
    let quoted = wait_for("PriceQuote quoted", WAIT, || {
        let api = api.clone();
        async move {
            let pq = api.get("a100").await.ok()?;
            let s = pq.status?;
            s.cheapest.is_some().then_some(s)
        }
    })
    .await;
    assert_eq!(quoted.candidates.len(), 2);
    for c in &quoted.candidates {
        assert!(c.available, "{c:?}");
        assert_eq!(c.currency.as_deref(), Some("CNY"));
        let hourly: f64 = c.hourly.as_deref().unwrap().parse().unwrap();
        let monthly: f64 = c.monthly.as_deref().unwrap().parse().unwrap();
        assert!(
            hourly > 0.0 && (monthly - hourly * 730.0).abs() < 1.0,
            "{c:?}"
        );
    }
    assert_eq!(
        quoted.candidates[0].instance_type.as_deref(),
        Some(ALIYUN.gpu_type("A100"))
    );
    assert_eq!(
        quoted.candidates[1].instance_type.as_deref(),
        Some(TENCENT.gpu_type("A100"))
    );
    let cheapest = quoted.cheapest.unwrap();
    assert_eq!(cheapest.provider, tencent);
    assert!(quoted.valid_until.is_some());

    let after = effective_calls(env.emulator.state());
    assert_eq!(writes(&after), writes(&before), "write calls: {after:?}");
    env.finish().await;
}

/// A Cheapest placement over Alibaba (CNY), Tencent (CNY) and AWS (USD) candidates.
fn three_clouds(aliyun: &str, tencent: &str, aws: &str, extra: Value) -> Value {
    let mut p = json!({
        "policy": "Cheapest",
        "candidates": [
            {"provider": aliyun, "region": ALIYUN.region, "zone": ALIYUN.zone},
            {"provider": tencent, "region": TENCENT.region, "zone": TENCENT.zone},
            {"provider": aws, "region": AWS.region, "zone": AWS.zone},
        ],
    });
    merge(&mut p, extra);
    p
}

fn provider_name(code: &str) -> String {
    format!("{}{}", PROVIDER_PREFIX, code.to_lowercase())
}

fn amount(v: Option<&String>) -> f64 {
    v.and_then(|h| h.parse().ok())
        .unwrap_or_else(|| panic!("an amount: {v:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cheapest_compares_three_clouds_in_one_currency() {
    let mut env = Env::start("placement-fx").await;
    let ns = env.ns.name.clone();
    let aliyun = env.code.clone();
    let tencent = env.extra_provider_on(&TENCENT, false).await;
    let aws = env.extra_provider_on(&AWS, false).await;
    for code in [&tencent, &aws] {
        env.wait_provider_available(&provider_name(code)).await;
    }
    // AWS's A100 (p4d) at 4.50 USD per hour: the smallest number of the three (the others
    // quote about 29 and 35 CNY), though about 32 CNY at 7.10 CNY per USD.
    let state = env.emulator.state().clone();
    let mut prices: PriceTable = state.prices();
    prices
        .instance_hourly
        .insert(AWS.gpu_type("A100").to_string(), 4.5);
    state.set_prices(prices);
    let set_rate = |to_reference: &'static str| {
        let providers = env.providers();
        let name = provider_name(&aws);
        async move {
            providers
                .patch(
                    &name,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(json!({
                        "spec": {"pricing": {"currency": "USD", "toReference": to_reference}},
                    })),
                )
                .await
                .map(|_| ())
        }
    };

    // 1. No rate for USD: the AWS quote is not compared with the CNY ones. It ranks after
    //    every priced candidate, saying what to set, and Tencent is the cheapest.
    env.create_instance(
        "fx-no-rate",
        "user-fx",
        gpu_box(three_clouds(&aliyun, &tencent, &aws, json!({}))),
    )
    .await;
    let first = env.wait_ready(&ns, "fx-no-rate").await;
    assert_eq!(placed(&first).map(|p| p.0), Some(tencent.clone()));
    let p = first.status.clone().unwrap().placement.unwrap();
    let on_aws = &p.candidates[2];
    assert_eq!(
        (on_aws.hourly.as_deref(), on_aws.currency.as_deref()),
        (Some("4.50"), Some("USD"))
    );
    assert!(
        on_aws.available && on_aws.reference_hourly.is_none(),
        "{on_aws:?}"
    );
    let why = on_aws.error.as_deref().unwrap_or_default();
    assert!(
        why.contains("quoted in USD, not in CNY (the reference currency)")
            && why.contains(&format!("code {aws} has no spec.pricing"))
            && why.contains(r#"set spec.pricing {currency: USD, toReference: "<CNY per USD>"}"#),
        "{why}"
    );
    assert!(
        p.reason.starts_with("cheapest of 3 available candidates: ")
            && p.reason.ends_with(&format!(
                "; not compared, no exchange rate: {aws} {} (USD)",
                AWS.region
            )),
        "{}",
        p.reason
    );
    for c in &p.candidates[..2] {
        assert_eq!(c.reference_hourly, c.hourly, "{c:?}");
        assert_eq!(c.reference_currency.as_deref(), Some("CNY"));
        assert_eq!(c.exchange_rate, None);
    }

    // 1b. Under a budget the unconverted quote cannot be checked: refused, Failover moves on
    //     (the CNY quotes, two to one, name the reference currency).
    env.create_instance(
        "fx-unchecked",
        "user-fx",
        gpu_box(json!({
            "policy": "Failover",
            "maxHourlyPrice": "100",
            "candidates": [
                {"provider": aws, "region": AWS.region, "zone": AWS.zone},
                {"provider": aliyun, "region": ALIYUN.region, "zone": ALIYUN.zone},
                {"provider": tencent, "region": TENCENT.region, "zone": TENCENT.zone},
            ],
        })),
    )
    .await;
    let unchecked = env.wait_ready(&ns, "fx-unchecked").await;
    assert_eq!(placed(&unchecked).map(|p| p.0), Some(aliyun.clone()));
    let p = unchecked.status.unwrap().placement.unwrap();
    assert_eq!(p.candidates[0].skipped.as_deref(), Some("NoExchangeRate"));
    let why = p.candidates[0].error.as_deref().unwrap_or_default();
    assert!(
        why.starts_with("maxHourlyPrice 100.00 cannot be checked: ")
            && why.contains("spec.pricing"),
        "{why}"
    );
    assert!(
        p.reason.contains(&format!(
            "failed over past {aws} {} (NoExchangeRate)",
            AWS.region
        )),
        "{}",
        p.reason
    );

    // 2. A rate must be a positive decimal (the CRD's schema and CEL).
    for bad in ["0", "7,10", "-1"] {
        let err = set_rate(bad).await.expect_err(bad);
        assert!(format!("{err}").contains("toReference"), "{bad}: {err}");
    }

    // 3. 7.10 CNY per USD: AWS's 4.50 is 31.95 CNY, dearer than Tencent, and above a budget of
    //    31 CNY that the raw 4.50 would pass.
    set_rate("7.10").await.expect("set the USD rate");
    // The operator's view of CloudProviders follows a watch: let it see the rate.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    env.create_instance(
        "fx-converted",
        "user-fx",
        gpu_box(three_clouds(
            &aliyun,
            &tencent,
            &aws,
            json!({"maxHourlyPrice": "31"}),
        )),
    )
    .await;
    let converted = env.wait_ready(&ns, "fx-converted").await;
    assert_eq!(placed(&converted).map(|p| p.0), Some(tencent.clone()));
    let p = converted.status.clone().unwrap().placement.unwrap();
    let on_aws = &p.candidates[2];
    assert_eq!(
        (
            on_aws.reference_hourly.as_deref(),
            on_aws.reference_currency.as_deref(),
            on_aws.exchange_rate.as_deref(),
            on_aws.skipped.as_deref(),
            on_aws.error.as_deref(),
        ),
        (
            Some("31.95"),
            Some("CNY"),
            Some("7.10"),
            Some("OverBudget"),
            Some("4.50 USD (31.95 CNY at 7.10) per hour is above the maximum 31.00 CNY"),
        )
    );
    let raw: Vec<f64> = p
        .candidates
        .iter()
        .map(|c| amount(c.hourly.as_ref()))
        .collect();
    assert!(
        raw[2] < raw[0] && raw[2] < raw[1],
        "AWS quotes the smallest number: {raw:?}"
    );
    assert_eq!(p.candidates[0].skipped.as_deref(), Some("OverBudget"));
    assert!(p.candidates[1].available);
    // A PriceQuote ranks the same way, showing both amounts.
    env.create(
        &ns,
        json!({
            "apiVersion": API_VERSION, "kind": "PriceQuote",
            "metadata": {"name": "a100-fx"},
            "spec": {
                "imageKey": "ubuntu-20.04",
                "gpuModel": "A100",
                "placement": three_clouds(&aliyun, &tencent, &aws, json!({})),
            },
        }),
    )
    .await
    .expect("create PriceQuote");
    let quotes = kube::Api::<multicloud_ecs::api::price_quote::PriceQuote>::namespaced(
        env.client.clone(),
        &ns,
    );
    let quoted = wait_for("PriceQuote quoted", WAIT, || {
        let quotes = quotes.clone();
        async move {
            let s = quotes.get("a100-fx").await.ok()?.status?;
            s.cheapest.is_some().then_some(s)
        }
    })
    .await;
    assert_eq!(quoted.cheapest.unwrap().provider, tencent);
    assert_eq!(
        quoted.candidates[2].reference_hourly.as_deref(),
        Some("31.95")
    );

    // 4. The platform team updates the rate to 6 CNY per USD: 27.00 CNY, now the cheapest.
    set_rate("6.00").await.expect("update the USD rate");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    env.create_instance(
        "fx-aws",
        "user-fx",
        gpu_box(three_clouds(
            &aliyun,
            &tencent,
            &aws,
            json!({"maxHourlyPrice": "31"}),
        )),
    )
    .await;
    let on_aws = env.wait_ready(&ns, "fx-aws").await;
    assert_eq!(
        placed(&on_aws),
        Some((aws.clone(), AWS.gpu_type("A100").to_string()))
    );
    let status = on_aws.status.unwrap();
    let p = status.placement.unwrap();
    assert_eq!(
        p.reason,
        format!(
            "cheapest of 2 available candidates: {aws} {} at 4.50 USD/h (27.00 CNY/h)",
            AWS.region
        )
    );
    assert_eq!(p.candidates[2].reference_hourly.as_deref(), Some("27.00"));
    assert_eq!(p.candidates[2].exchange_rate.as_deref(), Some("6.00"));
    assert!(
        amount(p.candidates[2].reference_hourly.as_ref())
            < amount(p.candidates[1].reference_hourly.as_ref())
    );
    // The order's price is AWS's own quote.
    let price = status.price.expect("status.price");
    assert_eq!(
        (price.currency.as_str(), price.hourly.as_str()),
        ("USD", "4.50")
    );
    assert_eq!(status.region.as_deref(), Some(AWS.region));
    assert!(status.instance_id.as_deref().unwrap().starts_with("i-"));
    env.finish().await;
}
