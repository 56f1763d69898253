//! Quote latency of placement: for each registered cloud, the time to ask the emulator (over
//! real HTTP, signed) for stock and a price — a cold quote — and the time a cached quote takes
//! (the operator's `PriceCache`, valid for an hour), for one GPU shape.
//!
//! cargo bench -p mce-bench --bench quote_latency [-- --rounds N]

use std::time::{Duration, Instant};

use mce_cloud::{
    BandwidthMode, ChargeMode, Credentials, DriverConfig, PriceQuery, RateLimit, Secret, SystemDisk,
};
use mce_emulator::{DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET};
use mce_testkit::manifests::{ALIYUN, CloudFixture, TENCENT};
use multicloud_ecs::controller::placement::PriceCache;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut rounds = 200usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--rounds" {
            rounds = args.next().and_then(|v| v.parse().ok()).unwrap_or(rounds);
        }
    }
    let emulator = mce_testkit::emulator::start_in_process(Duration::from_millis(300)).await;
    println!("quote latency, {rounds} rounds per cloud (emulator in-process, signed HTTP)");
    println!(
        "    {:<8} {:>22} {:>22} {:>22}",
        "cloud", "stock p50/p99 ms", "cold quote p50/p99 ms", "cached quote p50/p99 µs"
    );
    for cloud in [&ALIYUN, &TENCENT] {
        measure(cloud, &emulator.base_url(), rounds).await;
    }
}

async fn measure(cloud: &CloudFixture, endpoint: &str, rounds: usize) {
    let Some(plugin) = multicloud_ecs::providers::registry().plugin(cloud.provider_type) else {
        eprintln!("{} is not registered", cloud.provider_type);
        return;
    };
    let driver = match plugin.build(DriverConfig {
        credentials: Credentials {
            access_key_id: DEFAULT_ACCESS_KEY_ID.into(),
            access_key_secret: Secret::new(DEFAULT_ACCESS_KEY_SECRET),
        },
        endpoint: Some(endpoint.to_string()),
        rate_limit: Some(RateLimit::unlimited()),
    }) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{}: {e}", cloud.provider_type);
            return;
        }
    };
    let query = |disk_gib: u32| PriceQuery {
        region: cloud.region.into(),
        zone: Some(cloud.zone.into()),
        instance_type: cloud.gpu_type("A100").into(),
        image_id: Some(cloud.image("ubuntu-20.04").into()),
        system_disk: Some(SystemDisk {
            category: cloud.disk_category.into(),
            size_gib: disk_gib,
        }),
        charge: ChargeMode::OnDemand,
        bandwidth: Some((10, BandwidthMode::Traffic)),
    };
    let cache = PriceCache::default();
    let (mut stock, mut cold, mut cached) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let t = Instant::now();
        let _ = driver
            .describe_stock(
                cloud.region,
                Some(cloud.zone),
                cloud.gpu_type("A100"),
                ChargeMode::OnDemand,
            )
            .await;
        stock.push(t.elapsed());
        // A new shape each round: a miss, asked of the cloud.
        let q = query(40 + u32::try_from(round).unwrap_or(0));
        let t = Instant::now();
        if let Err(e) = cache.quote(cloud.provider_type, driver.as_ref(), &q).await {
            eprintln!("{}: {e}", cloud.provider_type);
            return;
        }
        cold.push(t.elapsed());
        let t = Instant::now();
        let _ = cache.quote(cloud.provider_type, driver.as_ref(), &q).await;
        cached.push(t.elapsed());
    }
    for v in [&mut stock, &mut cold, &mut cached] {
        v.sort();
    }
    println!(
        "    {:<8} {:>22} {:>22} {:>22}",
        cloud.provider_type,
        format!(
            "{:.2} / {:.2}",
            ms(percentile(&stock, 0.5)),
            ms(percentile(&stock, 0.99))
        ),
        format!(
            "{:.2} / {:.2}",
            ms(percentile(&cold, 0.5)),
            ms(percentile(&cold, 0.99))
        ),
        format!(
            "{:.1} / {:.1}",
            percentile(&cached, 0.5).as_secs_f64() * 1e6,
            percentile(&cached, 0.99).as_secs_f64() * 1e6
        ),
    );
}
