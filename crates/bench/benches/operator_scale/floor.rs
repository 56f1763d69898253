//! The API server's raw status-write floor: with no operator running, a client creates the same
//! EcsInstances the operator run applies (same manifests, same apply concurrency), then writes
//! their status the way the operator does (server-side apply of the status subresource as its
//! field manager, forced), twice per object (a Provisioning status, then a Ready one), at
//! `--floor-concurrency` in flight. Its status-write rate is what the API server (and etcd) of
//! this control plane can take at all; the operator's time to Ready is compared with
//! `floor_seconds(N) = N × operator writes per instance / status writes per second`.

use std::future::Future;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource};
use multicloud_ecs::api::conditions::{self, Desired};
use multicloud_ecs::api::ecs_instance::{NetworkStatusRef, Phase};
use multicloud_ecs::api::{EcsInstance, EcsInstanceStatus, Reason, TENANT_LABEL};
use multicloud_ecs::controller::context::FIELD_MANAGER;

use super::{
    Args, Cluster, cpu_seconds, diff_latency, diff_writes, instance, machine_busy_seconds,
    percentile, scrape_apiserver, settle,
};
use mce_testkit::namespace::create_namespace;

/// Status writes per object: a Provisioning status, then the Ready one.
pub const WRITES_PER_OBJECT: usize = 2;
/// Resource label of status writes in `apiserver_request_total`.
const STATUS_RESOURCE: &str = "ecsinstances/status";

/// CPU seconds of kube-apiserver, etcd and this process, and the machine's busy seconds.
#[derive(Clone, Copy, Default)]
pub struct Cpu {
    pub apiserver: f64,
    pub etcd: f64,
    pub bench: f64,
    pub machine: f64,
}

impl Cpu {
    fn read(apiserver: u32, etcd: u32, ticks: f64) -> Self {
        Cpu {
            apiserver: cpu_seconds(apiserver, ticks),
            etcd: cpu_seconds(etcd, ticks),
            bench: cpu_seconds(std::process::id(), ticks),
            machine: machine_busy_seconds(ticks),
        }
    }

    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            apiserver: self.apiserver - before.apiserver,
            etcd: self.etcd - before.etcd,
            bench: self.bench - before.bench,
            machine: self.machine - before.machine,
        }
    }
}

/// One phase of the floor client (the creates, or the status writes).
#[derive(Default)]
pub struct Stage {
    /// Successful writes.
    pub writes: usize,
    /// Failed attempts (retried, up to 5 times per write).
    pub failed_attempts: usize,
    /// Writes that failed every attempt.
    pub lost: usize,
    pub seconds: f64,
    pub cpu: Cpu,
    /// Client-side latency of the successful attempts, p50 / p99 (s).
    pub latency: (f64, f64),
    /// What the API server counted on the resource in the phase (all codes), and its mean
    /// latency (s).
    pub counted: f64,
    pub server_latency: Option<f64>,
}

impl Stage {
    pub fn rate(&self) -> f64 {
        self.writes as f64 / self.seconds.max(1e-9)
    }

    /// kube-apiserver CPU seconds per 1000 writes.
    pub fn apiserver_cpu_per_1000(&self) -> f64 {
        1000.0 * self.cpu.apiserver / (self.writes.max(1) as f64)
    }

    pub fn etcd_cpu_per_1000(&self) -> f64 {
        1000.0 * self.cpu.etcd / (self.writes.max(1) as f64)
    }
}

/// What the floor client measured at one size.
pub struct Floor {
    pub n: usize,
    pub creates: Stage,
    pub status: Stage,
    /// Bytes of the Ready status patch body (the larger of the two).
    pub body_bytes: usize,
    pub create_concurrency: usize,
    pub status_concurrency: usize,
    pub shared: bool,
}

impl Floor {
    /// `floor_seconds(N) = N × writes per instance / status writes per second`.
    pub fn seconds_for(&self, n: usize, writes_per_instance: f64) -> f64 {
        n as f64 * writes_per_instance / self.status.rate().max(1e-9)
    }
}

/// The outcome of one write, retried: (client-side seconds of the successful attempt, failed
/// attempts).
async fn with_retries<T, F, Fut>(what: &str, errors_shown: &Counter, mut request: F) -> Attempts
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut failed = 0;
    loop {
        let started = Instant::now();
        match request().await {
            Ok(_) => {
                return Attempts {
                    seconds: Some(started.elapsed().as_secs_f64()),
                    failed,
                };
            }
            Err(e) => {
                failed += 1;
                if errors_shown.bump() <= 10 {
                    eprintln!("  floor: {what}: {e} (attempt {failed})");
                }
                if failed > 5 {
                    return Attempts {
                        seconds: None,
                        failed,
                    };
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

struct Attempts {
    seconds: Option<f64>,
    failed: usize,
}

#[derive(Default)]
struct Counter(std::sync::atomic::AtomicUsize);

impl Counter {
    fn bump(&self) -> usize {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }
}

/// Sums the attempts of one phase.
fn phase_of(attempts: Vec<Attempts>, seconds: f64, cpu: Cpu) -> Stage {
    let mut latencies: Vec<f64> = attempts.iter().filter_map(|a| a.seconds).collect();
    latencies.sort_by(f64::total_cmp);
    Stage {
        writes: latencies.len(),
        failed_attempts: attempts.iter().map(|a| a.failed).sum(),
        lost: attempts.iter().filter(|a| a.seconds.is_none()).count(),
        seconds,
        cpu,
        latency: (percentile(&latencies, 0.5), percentile(&latencies, 0.99)),
        counted: 0.0,
        server_latency: None,
    }
}

/// The status the operator writes for instance `i`: while the instance boots (`ready` false),
/// then once all is Ready, with the same fields and condition set.
fn status_of(
    i: usize,
    args: &Args,
    run_code: &str,
    ready: bool,
    previous: &[Condition],
) -> EcsInstanceStatus {
    let cloud = args.clouds[i % args.clouds.len()];
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let id = format!("i-bench{i:012x}");
    let eip = format!("eip-bench{i:012x}");
    let user = i % args.users;
    let group = format!("sg-bench{i:012x}");
    let network = format!("user-{user:03}");
    let public = args.public_ip;
    let mut desired = vec![
        Desired::new(
            conditions::READY,
            ready,
            if ready {
                Reason::Ready
            } else {
                Reason::Starting
            },
            if ready {
                format!("instance {id} is ready")
            } else {
                format!("instance {id} is starting")
            },
        ),
        Desired::new(
            conditions::NETWORK_READY,
            true,
            Reason::NetworkReady,
            format!("network {network} ready"),
        ),
        Desired::new(
            conditions::INSTANCE_READY,
            ready,
            if ready {
                Reason::Running
            } else {
                Reason::Starting
            },
            if ready {
                format!("instance {id} is running")
            } else {
                format!("instance {id} is starting")
            },
        ),
    ];
    desired.push(if !public {
        Desired::new(
            conditions::PUBLIC_IP_READY,
            true,
            Reason::NotRequested,
            "no public IP requested",
        )
    } else if ready {
        Desired::new(
            conditions::PUBLIC_IP_READY,
            true,
            Reason::Bound,
            format!("EIP {eip} bound to {id}"),
        )
    } else {
        Desired::new(
            conditions::PUBLIC_IP_READY,
            false,
            Reason::Binding,
            "waiting for the instance to run",
        )
    });
    desired.push(Desired::new(
        conditions::PORTS_READY,
        true,
        Reason::PortsOpen,
        if args.ports {
            "open: 22, 8888"
        } else {
            "no ports open"
        },
    ));
    let stamp = now.0.to_string();
    EcsInstanceStatus {
        phase: Some(if ready {
            Phase::Running
        } else {
            Phase::Provisioning
        }),
        observed_generation: Some(1),
        conditions: conditions::merge(previous, &desired, Some(1), &now),
        provider: Some(super::cloud_code(run_code, cloud)),
        region: Some(cloud.region.to_string()),
        zone: Some(cloud.zone.to_string()),
        instance_type: Some(cloud.instance_type.to_string()),
        image_id: Some(cloud.images[0].1.to_string()),
        instance_id: Some(id),
        instance_id_learned_at: Some(stamp.clone()),
        private_ip: ready.then(|| format!("172.16.{}.{}", (i / 250) % 250, i % 250 + 2)),
        public_ip: (ready && public)
            .then(|| format!("47.{}.{}.{}", i / 62500, (i / 250) % 250, i % 250 + 2)),
        eip_allocation_id: (ready && public).then(|| eip.clone()),
        eip_allocation_id_learned_at: (ready && public).then(|| stamp.clone()),
        network: Some(NetworkStatusRef {
            name: network,
            vpc_id: Some(format!("vpc-bench{user:012x}")),
            v_switch_id: Some(format!("vsw-bench{user:012x}")),
            security_group_id: Some(format!("sg-benchnet{user:09x}")),
        }),
        security_group_id: Some(group),
        instance_charge_type: Some("PostPaid".into()),
        internet_charge_type: public.then(|| "PayByTraffic".into()),
        client_token: Some(format!("mce-{i:032x}")),
        eip_client_token: public.then(|| format!("mce-eip-{i:028x}")),
        security_group_client_token: Some(format!("mce-sg-{i:029x}")),
        ..EcsInstanceStatus::default()
    }
}

/// The operator's patch: `apiVersion`, `kind` and the status, applied to the status subresource.
fn patch_body(status: &EcsInstanceStatus) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": EcsInstance::api_version(&()),
        "kind": EcsInstance::kind(&()),
        "status": status,
    })
}

/// Measures the floor at `args.instances` objects on `cluster` (a fresh one unless reused). No
/// operator may run on it: the bench's own is stopped before (on a shared control plane another
/// one could, and would skew the figures).
pub async fn measure(args: Args, cluster: Cluster) -> Floor {
    let n = args.instances;
    let client = cluster.client.clone();
    let pids = cluster.cp.pids();
    let pid = |name: &str| {
        pids.iter()
            .find(|(p, _)| *p == name)
            .map(|(_, pid)| *pid)
            .unwrap_or_else(|| panic!("{name} pid"))
    };
    let (apiserver, etcd) = (pid("kube-apiserver"), pid("etcd"));
    let ticks = super::clock_ticks();
    settle(apiserver, ticks).await;

    let run_id = format!("{:08x}", rand::random::<u32>());
    let ns = format!("bench-floor-{run_id}");
    let code = format!("BENCH-{}", run_id.to_uppercase());
    create_namespace(&client, &ns, &[(TENANT_LABEL, &format!("bench-{run_id}"))]).await;
    let api = Api::<EcsInstance>::namespaced(client.clone(), &ns);
    let errors_shown = Counter::default();
    let params = PatchParams::apply(FIELD_MANAGER).force();

    // Warm-up, not measured: the first create and the first server-side applies of a CRD on a
    // fresh API server build its schema models once (a fraction of a CPU second): one extra
    // object, created and written twice.
    {
        let mut obj = instance(n, &ns, &code, &args);
        obj.metadata.name = Some("floor-warm-up".into());
        let pp = PostParams::default();
        with_retries("create floor-warm-up", &errors_shown, || {
            api.create(&pp, &obj)
        })
        .await;
        let first = status_of(n, &args, &code, false, &[]);
        let second = status_of(n, &args, &code, true, &first.conditions);
        for status in [first, second] {
            let body = patch_body(&status);
            let patch = Patch::Apply(&body);
            with_retries("status of floor-warm-up", &errors_shown, || {
                api.patch_status("floor-warm-up", &params, &patch)
            })
            .await;
        }
    }

    // The creates: the same manifests at the same concurrency as the operator run's apply.
    eprintln!(
        "floor: creating {n} EcsInstances ({} in flight), no operator running...",
        args.apply_concurrency
    );
    let a0 = scrape_apiserver(&client).await;
    let cpu0 = Cpu::read(apiserver, etcd, ticks);
    let t0 = Instant::now();
    let attempts: Vec<Attempts> = futures::stream::iter(0..n)
        .map(|i| {
            let (api, args, ns, code, errors_shown) = (&api, &args, &ns, &code, &errors_shown);
            async move {
                let obj = instance(i, ns, code, args);
                let pp = PostParams::default();
                with_retries(&format!("create vm-{i:05}"), errors_shown, || {
                    api.create(&pp, &obj)
                })
                .await
            }
        })
        .buffer_unordered(args.apply_concurrency)
        .collect()
        .await;
    let seconds = t0.elapsed().as_secs_f64();
    let cpu1 = Cpu::read(apiserver, etcd, ticks);
    let a1 = scrape_apiserver(&client).await;
    let mut creates = phase_of(attempts, seconds, cpu1.since(cpu0));
    count_server_side(&mut creates, &a0, &a1, "ecsinstances", "POST");
    eprintln!(
        "floor: {} created in {seconds:.1} s ({:.0}/s)",
        creates.writes,
        creates.rate()
    );

    // The status writes: twice per object, as the operator's field manager.
    let concurrency = args.floor_concurrency;
    eprintln!(
        "floor: {WRITES_PER_OBJECT} status writes per object ({concurrency} in flight, server-side apply as {FIELD_MANAGER})..."
    );
    let body_bytes = serde_json::to_vec(&patch_body(&status_of(0, &args, &code, true, &[])))
        .map_or(0, |b| b.len());
    let s0 = scrape_apiserver(&client).await;
    let cpu0 = Cpu::read(apiserver, etcd, ticks);
    let t0 = Instant::now();
    let attempts: Vec<Attempts> = futures::stream::iter(0..n)
        .map(|i| {
            let (api, args, code, params, errors_shown) =
                (&api, &args, &code, &params, &errors_shown);
            async move {
                let name = format!("vm-{i:05}");
                let first = status_of(i, args, code, false, &[]);
                let second = status_of(i, args, code, true, &first.conditions);
                let mut out = Vec::with_capacity(WRITES_PER_OBJECT);
                for status in [first, second] {
                    let body = patch_body(&status);
                    let patch = Patch::Apply(&body);
                    out.push(
                        with_retries(&format!("status of {name}"), errors_shown, || {
                            api.patch_status(&name, params, &patch)
                        })
                        .await,
                    );
                }
                futures::stream::iter(out)
            }
        })
        .buffer_unordered(concurrency)
        .flatten()
        .collect()
        .await;
    let seconds = t0.elapsed().as_secs_f64();
    let cpu1 = Cpu::read(apiserver, etcd, ticks);
    let s1 = scrape_apiserver(&client).await;
    let mut status = phase_of(attempts, seconds, cpu1.since(cpu0));
    count_server_side(&mut status, &s0, &s1, STATUS_RESOURCE, "APPLY");
    eprintln!(
        "floor: {} status writes in {seconds:.1} s ({:.0}/s)",
        status.writes,
        status.rate()
    );

    // A reused control plane keeps running: remove the objects (no finalizers: no operator ran)
    // and wait for the namespace to go, so the next size's measurement starts clean.
    if !cluster.cp.stops_on_drop() {
        let dp = DeleteParams::background();
        let _ = api.delete_collection(&dp, &ListParams::default()).await;
        let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
            .delete(&ns, &dp)
            .await;
        super::wait_namespace_gone(&client, &ns, n).await;
    }
    Floor {
        n,
        creates,
        status,
        body_bytes,
        create_concurrency: args.apply_concurrency,
        status_concurrency: concurrency,
        shared: !cluster.cp.stops_on_drop(),
    }
}

/// What the API server counted on `resource` between two scrapes (all codes), and the mean
/// latency of `verb` on it.
fn count_server_side(
    phase: &mut Stage,
    before: &super::ApiScrape,
    after: &super::ApiScrape,
    resource: &str,
    verb: &str,
) {
    phase.counted = diff_writes(&after.writes, &before.writes)
        .iter()
        .filter(|((r, _, _), _)| r == resource)
        .map(|(_, v)| v)
        .sum::<f64>()
        + 0.0;
    phase.server_latency = diff_latency(after, before)
        .get(&(resource.to_string(), verb.to_string()))
        .map(|(_, mean)| *mean);
}

/// Prints what the floor client measured, and the floor of the operator run at the same size
/// (`writes_per_instance`: the operator's, if that run finished).
pub fn print(f: &Floor, writes_per_instance: Option<f64>) {
    let n = f.n;
    println!();
    println!(
        "Raw status-write floor at N={n}: no operator running, {} control plane; creates of the \
         same manifests {} in flight, then {WRITES_PER_OBJECT} status writes per object (server-side \
         apply of the status subresource as field manager {FIELD_MANAGER}, forced, like the \
         operator's apply_status; Ready body {} bytes) {} in flight:",
        if f.shared {
            "the reused"
        } else {
            "a fresh dedicated"
        },
        f.create_concurrency,
        f.body_bytes,
        f.status_concurrency,
    );
    println!(
        "    {:<14} {:>7} {:>8} {:>9} {:>19} {:>11} {:>9} {:>19} {:>20}",
        "phase",
        "writes",
        "seconds",
        "per s",
        "client p50/p99 ms",
        "server ms",
        "counted",
        "apiserver CPU s",
        "per 1000 writes"
    );
    for (name, p) in [("creates", &f.creates), ("status writes", &f.status)] {
        println!(
            "    {name:<14} {:>7} {:>8.1} {:>9.1} {:>19} {:>11} {:>9.0} {:>19} {:>20}",
            p.writes,
            p.seconds,
            p.rate(),
            format!("{:.1} / {:.1}", p.latency.0 * 1e3, p.latency.1 * 1e3),
            p.server_latency
                .map_or("-".to_string(), |s| format!("{:.1}", s * 1e3)),
            p.counted,
            format!("{:.2} (etcd {:.2})", p.cpu.apiserver, p.cpu.etcd),
            format!(
                "{:.2} (etcd {:.2})",
                p.apiserver_cpu_per_1000(),
                p.etcd_cpu_per_1000()
            ),
        );
        if p.failed_attempts > 0 {
            println!(
                "        {} failed attempts, {} writes failed every attempt",
                p.failed_attempts, p.lost
            );
        }
    }
    let cpu = f.status.cpu;
    let share = |s: f64| 100.0 * s / f.status.seconds.max(1e-9);
    println!(
        "    during the status writes: machine busy {:.0}% (2 cores = 200%): kube-apiserver {:.0}%, \
         etcd {:.0}%, this client {:.0}%, other processes {:.0}% (other work on this host skews \
         the floor)",
        share(cpu.machine),
        share(cpu.apiserver),
        share(cpu.etcd),
        share(cpu.bench),
        share((cpu.machine - cpu.apiserver - cpu.etcd - cpu.bench).max(0.0)),
    );
    match writes_per_instance {
        Some(w) => println!(
            "    floor_seconds(N) = N × operator writes per instance / status writes per s = \
             {n} × {w:.2} / {:.1} = {:.1} s (creating the objects adds N / creates per s = {:.1} s \
             if not overlapped)",
            f.status.rate(),
            f.seconds_for(n, w),
            n as f64 / f.creates.rate().max(1e-9)
        ),
        None => println!(
            "    floor_seconds(N) = N × operator writes per instance / {:.1} status writes per s \
             (no operator figure at this size)",
            f.status.rate()
        ),
    }
}
