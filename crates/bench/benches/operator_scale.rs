//! Scale of the operator, end to end: apply N EcsInstances and measure the time until all are
//! Ready, the API-server writes and cloud calls per instance (by resource and by action), the
//! operator's peak RSS, and what happens during a steady-state window after convergence.
//!
//! ```sh
//! cargo bench -p mce-bench --bench operator_scale -- --instances 100
//! cargo bench -p mce-bench --bench operator_scale -- --instances 1000 --steady-seconds 60
//! cargo bench -p mce-bench --bench operator_scale -- --instances 1000,5000,10000
//! ```
//!
//! Real parts only: the control plane of `scripts/control-plane.sh` (etcd + kube-apiserver), the
//! emulator (`multicloud-ecs-emulator`) and the operator (`multicloud-ecs run`) as separate
//! release-built processes (built by `cargo build --release` at the start of the run, through
//! `mce_testkit::paths`: cargo builds no other package's binaries for a bench). By default the
//! control plane is a dedicated copy (`MCE_CP_DIR=$TMPDIR/multicloud-ecs-bench-cp-<pid>`),
//! started for the run and stopped after it: the API server's write counters are global, and an
//! operator started by a concurrent test run on the shared copy would reconcile the benchmark's
//! objects too. `--shared-control-plane` uses the shared copy instead, `--keep-control-plane`
//! leaves the dedicated one running.
//!
//! The run, step by step ([`measure_operator`]): build the binaries; start the control plane and
//! install the CRDs; start the emulator; create the tenant namespace, Secrets and CloudProvider;
//! wait until the API server idles and record what it writes by itself (baseline); start the
//! operator and wait for the CloudProvider to be Available; apply N EcsInstances while waiting
//! for all to be Ready (the convergence window); hold a steady-state window; stop the processes;
//! report; clean up.
//!
//! Several sizes (`--instances 1000,5000,10000`, [`run`]): the whole measurement runs for each
//! size in turn, each on a fresh control plane and emulator (the previous ones stopped and their
//! data removed), so a size never sees the objects, the etcd history or the caches of another;
//! with `--shared-control-plane` or `--keep-control-plane` every size uses that one control plane
//! (each in its own namespace, cleaned up after it). A size whose measurement fails is reported
//! as failed and the next one runs. The run ends with one comparison table, a row per size: time
//! to all Ready, API-server writes per instance (and those on `ecsinstances/status`), cloud calls
//! per instance, steady-state writes and calls per instance per resync, the operator's peak RSS,
//! and the time to Ready as a multiple of the floor.
//!
//! The floor ([`floor`]; `--floor`, on by default with several sizes, `--no-floor` skips it): what
//! the API server alone can do. With NO operator running, on its own fresh control plane of the
//! same kind (started after the operator's run of that size is stopped), a client creates the
//! same EcsInstances (same manifests, `--apply-concurrency` in flight), then writes the status of
//! each twice (a Provisioning status, then a Ready one with the five conditions, the ids and
//! addresses the operator records) exactly as the operator's `Context::apply_status` does:
//! server-side apply of the status subresource, field manager `multicloud-ecs`, forced;
//! `--floor-concurrency` [64, the operator's default concurrency] in flight. Reported: creates/s,
//! status writes/s, client and server latency, kube-apiserver (and etcd) CPU seconds per 1000
//! writes, and `floor_seconds(N) = N × operator writes per instance at N / status writes per s of
//! the floor client at N`: the time the API server needs for the writes the operator made, were
//! they all status writes as fast as these (most of the operator's writes are status writes; its
//! others, events and finalizer patches, cost the API server less). One object is created and
//! written first, unmeasured, so the one-off cost of a fresh API server's first server-side apply
//! of the CRD stays out of the rate. The floor is measured at every size, at that size: it may
//! depend on the number of objects the API server holds, and it is cheap next to the operator's
//! run — on 2 cores ~500 creates/s and ~150 status writes/s (~11 kube-apiserver CPU ms each), so
//! at N = 10,000 about 20 s of creates, 2–3 minutes of status writes and a control-plane start.
//!
//! Scale of the benchmark itself: the readiness watch updates its Ready count per event (no
//! recount), the objects are built lazily as the apply sends them, per-object state is a few
//! maps keyed by name, and the convergence timeout grows with N (max(600 s, N × 0.12 s) unless
//! `--timeout-seconds`). Cleaning up a reused control plane deletes the objects (32 at a time),
//! then polls once a second until the namespace controller has removed the namespace (at most
//! max(120 s, N × 0.05 s)), so one size's deletions fall in neither the next size's baseline nor
//! its measurement; a fresh dedicated control plane is simply stopped and its data removed.
//!
//! Measurements:
//! - writes: `apiserver_request_total` (verbs POST, PUT, PATCH, APPLY, DELETE, DELETECOLLECTION)
//!   scraped from `/metrics` before and after, by resource; the benchmark's own creates are
//!   subtracted; `leases` are the API server's own heartbeats (the operator takes no lease);
//! - cloud calls: the emulator's `GET /_emulator/calls`, by action;
//! - memory: `VmHWM` of the operator's `/proc/<pid>/status`;
//! - CPU: utime + stime of operator, kube-apiserver, etcd, emulator and this process from
//!   `/proc/<pid>/stat`, to show where the time goes, and the rest of the machine's busy time
//!   (`/proc/stat`): other work on a shared host skews every figure;
//! - reconciles: the operator's own `/metrics` (`--http-addr`), by controller and failure reason;
//! - readiness: a watch on the namespace's EcsInstances (condition `Ready=True`).
//!
//! Options (defaults in brackets): `--instances N[,N...]` [100] (a comma list: one measurement
//! per size, in the order given), `--steady-seconds S` [60],
//! `--resync-seconds S` [20] and `--probe-seconds S` [30] (operator, so both happen in the steady
//! window), `--operator-concurrency N` [operator default], `--apply-concurrency N` [32],
//! `--users N` [10] (instances are spread over N users, one silent network each),
//! `--no-public-ip`, `--no-ports`, `--boot-delay-ms MS` [2000, the emulator's default],
//! `--timeout-seconds S` [max(600, N × 0.12)], `--shared-control-plane`, `--keep-control-plane`,
//! `--clouds ALIYUN,TENCENT,AWS` [ALIYUN] (one CloudProvider per cloud on the same emulator;
//! instance i goes to cloud i mod the number of clouds, so `ALIYUN,TENCENT` is half and half),
//! `--placement Cheapest|Failover` (every instance instead names all the clouds as placement
//! candidates and asks for 2 vCPU / 8 GiB, which each catalog maps to its own type),
//! `--set` (one EcsInstanceSet of N replicas, the template of instance 0, instead of N
//! EcsInstances: compare with `--users 1`). Instances on a cloud without password logins
//! (AWS) carry none. `--floor` / `--no-floor` [on with several sizes, off with one],
//! `--floor-concurrency N` [64] (status writes in flight of the floor client).
//! Logs of the operator and the emulator are kept under `target/tmp/operator-scale-<run>/`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{DeleteParams, DynamicObject, ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use mce_testkit::control_plane::ControlPlane;
use mce_testkit::crds::install_crds;
use mce_testkit::emulator::EmulatorProcess;
use mce_testkit::manifests::{
    ALIYUN, AWS, CREDENTIALS_SECRET, CloudFixture, EMULATOR_CREDENTIALS, TENCENT, ar, dynamic,
    instance_manifest, merge, provider_manifest_on,
};
use mce_testkit::namespace::{create_namespace, create_secret};
use mce_testkit::operator;
use mce_testkit::operator_env::force_clear_namespace;
use mce_testkit::paths::{Build, emulator_bin, operator_bin, tmp_dir};
use mce_testkit::process::{Process, free_port};
use mce_testkit::status::provider_available;
use multicloud_ecs::api::{CloudProvider, EcsInstance, TENANT_LABEL};
use parking_lot::Mutex;
use serde_json::json;

#[path = "operator_scale/floor.rs"]
mod floor;

const WRITE_VERBS: &[&str] = &[
    "POST",
    "PUT",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];

// ---------------------------------------------------------------- arguments

#[derive(Debug, Clone)]
struct Args {
    /// The sizes measured in turn (`--instances 1000,5000`).
    sizes: Vec<usize>,
    /// The size being measured (one of `sizes`, see [`Args::for_size`]).
    instances: usize,
    steady_seconds: u64,
    resync_seconds: u64,
    probe_seconds: u64,
    operator_concurrency: Option<u16>,
    apply_concurrency: usize,
    users: usize,
    public_ip: bool,
    ports: bool,
    boot_delay_ms: u64,
    /// `None`: max(600 s, N × 0.12 s), see [`Args::timeout`].
    timeout_seconds: Option<u64>,
    shared_control_plane: bool,
    keep_control_plane: bool,
    clouds: Vec<&'static CloudFixture>,
    placement: Option<String>,
    /// Apply one EcsInstanceSet of N replicas (the template of instance 0) instead of N
    /// EcsInstances.
    set: bool,
    /// `--floor` / `--no-floor`; `None`: on when several sizes are measured.
    floor: Option<bool>,
    /// Status writes in flight of the floor client.
    floor_concurrency: usize,
}

impl Args {
    fn parse() -> Self {
        let mut args = Args {
            sizes: vec![100],
            instances: 100,
            steady_seconds: 60,
            resync_seconds: 20,
            probe_seconds: 30,
            operator_concurrency: None,
            apply_concurrency: 32,
            users: 10,
            public_ip: true,
            ports: true,
            boot_delay_ms: 2000,
            timeout_seconds: None,
            shared_control_plane: false,
            keep_control_plane: false,
            clouds: vec![&ALIYUN],
            placement: None,
            set: false,
            floor: None,
            floor_concurrency: 64,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let (key, inline) = match arg.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (arg.clone(), None),
            };
            let mut value = |name: &str| -> String {
                inline
                    .clone()
                    .or_else(|| it.next())
                    .unwrap_or_else(|| usage(&format!("{name} needs a value")))
            };
            fn num<T: std::str::FromStr>(name: &str, v: String) -> T {
                v.parse()
                    .unwrap_or_else(|_| usage(&format!("{name}: not a number: {v}")))
            }
            match key.as_str() {
                // `cargo bench` passes `--bench` to every harness-less bench.
                "--bench" => {}
                "--instances" | "-n" => {
                    args.sizes = value(&key)
                        .split(',')
                        .map(|v| num(&key, v.trim().to_string()))
                        .collect();
                }
                "--steady-seconds" => args.steady_seconds = num(&key, value(&key)),
                "--resync-seconds" => args.resync_seconds = num(&key, value(&key)),
                "--probe-seconds" => args.probe_seconds = num(&key, value(&key)),
                "--operator-concurrency" => {
                    args.operator_concurrency = Some(num(&key, value(&key)))
                }
                "--apply-concurrency" => args.apply_concurrency = num(&key, value(&key)),
                "--users" => args.users = num(&key, value(&key)),
                "--no-public-ip" => args.public_ip = false,
                "--set" => args.set = true,
                "--no-ports" => args.ports = false,
                "--boot-delay-ms" => args.boot_delay_ms = num(&key, value(&key)),
                "--timeout-seconds" => args.timeout_seconds = Some(num(&key, value(&key))),
                "--floor" => args.floor = Some(true),
                "--no-floor" => args.floor = Some(false),
                "--floor-concurrency" => args.floor_concurrency = num(&key, value(&key)),
                "--shared-control-plane" => args.shared_control_plane = true,
                "--keep-control-plane" => args.keep_control_plane = true,
                "--placement" => args.placement = Some(value(&key)),
                "--clouds" => {
                    args.clouds = value(&key)
                        .split(',')
                        .map(|t| {
                            CloudFixture::of(&t.trim().to_uppercase())
                                .unwrap_or_else(|| usage(&format!("unknown cloud {t:?}")))
                        })
                        .collect();
                }
                "--help" | "-h" => usage(""),
                other => usage(&format!("unknown argument {other}")),
            }
        }
        if args.sizes.contains(&0)
            || args.users == 0
            || args.apply_concurrency == 0
            || args.floor_concurrency == 0
        {
            usage(
                "--instances, --users, --apply-concurrency and --floor-concurrency must be positive",
            );
        }
        args.instances = args.sizes[0];
        args
    }

    /// The arguments of the measurement of `n` instances.
    fn for_size(&self, n: usize) -> Self {
        Args {
            instances: n,
            ..self.clone()
        }
    }

    /// How long the apply may take to converge: `--timeout-seconds`, else max(600 s, N × 0.12 s).
    fn timeout(&self) -> Duration {
        Duration::from_secs(
            self.timeout_seconds
                .unwrap_or_else(|| 600.max((self.instances as f64 * 0.12).ceil() as u64)),
        )
    }

    /// Whether the raw status-write floor is measured (at each size).
    fn floor_enabled(&self) -> bool {
        self.floor.unwrap_or(self.sizes.len() > 1)
    }
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("operator_scale: {problem}");
    }
    eprintln!(
        "usage: cargo bench -p mce-bench --bench operator_scale -- [--instances N[,N...]] \
         [--steady-seconds S] [--resync-seconds S] [--probe-seconds S] [--operator-concurrency N] \
         [--apply-concurrency N] [--users N] [--no-public-ip] [--no-ports] [--boot-delay-ms MS] \
         [--timeout-seconds S] [--shared-control-plane] [--keep-control-plane] \
         [--clouds ALIYUN,TENCENT,AWS] [--placement Cheapest|Failover] [--set] \
         [--floor | --no-floor] [--floor-concurrency N]"
    );
    std::process::exit(if problem.is_empty() { 0 } else { 2 })
}

// ---------------------------------------------------------------- /proc sampling

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU seconds (user + system) of a process.
fn cpu_seconds(pid: u32, ticks: f64) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let stime: f64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (utime + stime) / ticks
}

/// A `/proc/<pid>/status` field in MiB (`VmHWM`, `VmRSS`).
fn status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Processes whose CPU time is reported.
struct Procs {
    list: Vec<(&'static str, u32)>,
    ticks: f64,
}

impl Procs {
    /// CPU seconds of each listed process, then of the whole machine (busy time, all cores).
    fn cpu(&self) -> Vec<f64> {
        let mut out: Vec<f64> = self
            .list
            .iter()
            .map(|(_, pid)| cpu_seconds(*pid, self.ticks))
            .collect();
        out.push(machine_busy_seconds(self.ticks));
        out
    }
}

/// Busy CPU seconds of the machine (all cores) from the first line of `/proc/stat`.
fn machine_busy_seconds(ticks: f64) -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...: everything but idle and iowait.
    let busy: f64 = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4 && *i < 8)
        .map(|(_, v)| v)
        .sum();
    busy / ticks
}

// ---------------------------------------------------------------- API-server metrics

/// Write counts by (resource[/subresource], verb, code).
type Writes = BTreeMap<(String, String, String), f64>;

fn parse_labels(s: &str) -> HashMap<&str, &str> {
    let mut labels = HashMap::new();
    let mut rest = s;
    while let Some((key, after)) = rest.split_once("=\"") {
        let Some(end) = after.find('"') else { break };
        labels.insert(key.trim_start_matches(','), &after[..end]);
        rest = &after[end + 1..];
    }
    labels
}

/// What one scrape of the API server's `/metrics` yields.
#[derive(Default, Clone)]
struct ApiScrape {
    writes: Writes,
    /// (resource, verb) → (sum of seconds, count) of `apiserver_request_duration_seconds`.
    latency: BTreeMap<(String, String), (f64, f64)>,
}

fn resource_of(labels: &HashMap<&str, &str>) -> String {
    let mut resource = labels
        .get("resource")
        .copied()
        .unwrap_or_default()
        .to_string();
    if let Some(sub) = labels.get("subresource").filter(|s| !s.is_empty()) {
        resource = format!("{resource}/{sub}");
    }
    resource
}

async fn scrape_apiserver(client: &Client) -> ApiScrape {
    let request = axum::http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    let text = client
        .request_text(request)
        .await
        .expect("GET /metrics of the API server");
    let mut out = ApiScrape::default();
    for line in text.lines() {
        let (metric, rest) = match line.split_once('{') {
            Some(x) => x,
            None => continue,
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let value: f64 = value.trim().parse().unwrap_or(0.0);
        let labels = parse_labels(labels);
        let verb = labels.get("verb").copied().unwrap_or_default();
        if !WRITE_VERBS.contains(&verb) {
            continue;
        }
        match metric {
            "apiserver_request_total" => {
                let code = labels.get("code").copied().unwrap_or_default().to_string();
                *out.writes
                    .entry((resource_of(&labels), verb.to_string(), code))
                    .or_default() += value;
            }
            "apiserver_request_duration_seconds_sum" => {
                out.latency
                    .entry((resource_of(&labels), verb.to_string()))
                    .or_default()
                    .0 += value;
            }
            "apiserver_request_duration_seconds_count" => {
                out.latency
                    .entry((resource_of(&labels), verb.to_string()))
                    .or_default()
                    .1 += value;
            }
            _ => {}
        }
    }
    out
}

/// Mean latency of write requests between two scrapes, by (resource, verb): (count, mean s).
fn diff_latency(after: &ApiScrape, before: &ApiScrape) -> BTreeMap<(String, String), (f64, f64)> {
    after
        .latency
        .iter()
        .filter_map(|(k, (sum, count))| {
            let (s0, c0) = before.latency.get(k).copied().unwrap_or_default();
            let (ds, dc) = (sum - s0, count - c0);
            (dc > 0.0).then(|| (k.clone(), (dc, ds / dc)))
        })
        .collect()
}

/// The operator's own `/metrics`: reconcile counters and durations (`multicloud_ecs_reconcile*`).
async fn scrape_operator(http: &reqwest::Client, base: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(resp) = http.get(format!("{base}/metrics")).send().await else {
        return out;
    };
    let Ok(text) = resp.text().await else {
        return out;
    };
    for line in text.lines() {
        if !line.starts_with("multicloud_ecs_reconcile") || line.contains("_bucket{") {
            continue;
        }
        if let Some((key, value)) = line.rsplit_once(' ') {
            out.insert(key.to_string(), value.parse().unwrap_or(0.0));
        }
    }
    out
}

fn diff_map(
    after: &BTreeMap<String, f64>,
    before: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0.0);
            (d > 0.0).then(|| (k.clone(), d))
        })
        .collect()
}

fn diff_writes(after: &Writes, before: &Writes) -> Writes {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0.0);
            (d > 0.0).then(|| (k.clone(), d))
        })
        .collect()
}

/// Removes the benchmark's own writes (one successful POST per instance, plus failed tries).
fn subtract(writes: &mut Writes, own: &BTreeMap<(String, String, String), f64>) {
    for (k, v) in own {
        if let Some(w) = writes.get_mut(k) {
            *w -= v;
        }
    }
    writes.retain(|_, v| *v > 0.0);
}

/// Resources the control plane writes by itself (seen in the baseline window, before the operator
/// starts: the API server's lease heartbeats and its `kubernetes` endpoints reconciler), as
/// recorded on the control plane of the size being measured.
static BACKGROUND: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn is_apiserver_own(resource: &str) -> bool {
    BACKGROUND.lock().contains(resource)
}

fn operator_write_total(writes: &Writes) -> f64 {
    writes
        .iter()
        .filter(|((r, _, _), _)| !is_apiserver_own(r))
        .map(|(_, v)| v)
        .sum::<f64>()
        + 0.0 // an empty f64 sum is -0.0
}

// ---------------------------------------------------------------- emulator

async fn emulator_calls(http: &reqwest::Client, base: &str) -> BTreeMap<String, u64> {
    let v: serde_json::Value = http
        .get(format!("{base}/_emulator/calls"))
        .send()
        .await
        .expect("GET /_emulator/calls")
        .json()
        .await
        .expect("calls JSON");
    let mut out = BTreeMap::new();
    if let Some(m) = v["byAction"].as_object() {
        for (k, n) in m {
            out.insert(k.clone(), n.as_u64().unwrap_or(0));
        }
    }
    if let Some(m) = v["errors"].as_object() {
        for (k, n) in m {
            out.insert(format!("error:{k}"), n.as_u64().unwrap_or(0));
        }
    }
    out
}

fn diff_calls(
    after: &BTreeMap<String, u64>,
    before: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// The emulator as a process, with quotas large enough for N instances of `--users` users.
async fn start_emulator(bin: &Path, args: &Args, dir: &Path) -> EmulatorProcess {
    let n = args.instances as u64;
    let quotas = json!({
        "vpcs": args.users as u64 + 100,
        "subnetsPerVpc": 1000,
        "securityGroups": 4 * n + 1000,
        "rulesPerSecurityGroup": 1000,
        "instances": 4 * n + 1000,
        "eips": 4 * n + 1000,
        "tagsPerResource": 50,
    });
    let flags = [
        "--boot-delay-ms".to_string(),
        args.boot_delay_ms.to_string(),
        "--quotas".to_string(),
        quotas.to_string(),
    ];
    EmulatorProcess::start(bin, &flags, &dir.join("emulator.log")).await
}

// ---------------------------------------------------------------- readiness watch

/// What the watch saw. Every event costs O(1) (the Ready count is kept up to date, never
/// recounted): N objects times a few status writes each stay cheap at N = 10,000.
#[derive(Default)]
struct Readiness {
    /// name → (Ready, reason of the Ready condition)
    objects: HashMap<String, (bool, String)>,
    /// name → first time seen Ready
    ready_at: HashMap<String, Instant>,
    ready: usize,
}

impl Readiness {
    fn observe(&mut self, inst: &EcsInstance) {
        let name = inst.name_any();
        let ready = inst
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| (c.status == "True", c.reason.clone()))
            .unwrap_or((false, "NoStatus".into()));
        if ready.0 && !self.ready_at.contains_key(&name) {
            self.ready_at.insert(name.clone(), Instant::now());
        }
        let now_ready = ready.0;
        let was_ready = self.objects.insert(name, ready).is_some_and(|(r, _)| r);
        self.count(was_ready, now_ready);
    }

    fn remove(&mut self, name: &str) {
        if let Some((was_ready, _)) = self.objects.remove(name) {
            self.count(was_ready, false);
        }
    }

    fn count(&mut self, was_ready: bool, now_ready: bool) {
        match (was_ready, now_ready) {
            (false, true) => self.ready += 1,
            (true, false) => self.ready -= 1,
            _ => {}
        }
    }

    fn not_ready_reasons(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for (ready, reason) in self.objects.values() {
            if !ready {
                *out.entry(reason.clone()).or_default() += 1;
            }
        }
        out
    }
}

/// A background task, aborted when dropped (so a failed measurement leaves no watch retrying
/// against a stopped control plane).
struct Task<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn spawn_watch(api: Api<EcsInstance>, state: Arc<Mutex<Readiness>>) -> Task<()> {
    Task(tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    state.lock().observe(&o)
                }
                Ok(watcher::Event::Delete(o)) => state.lock().remove(&o.name_any()),
                Ok(_) => {}
                Err(e) => eprintln!("watch error (retrying): {e}"),
            }
        }
    }))
}

// ---------------------------------------------------------------- objects

/// Password Secret of every instance.
const LOGIN_SECRET: &str = "bench-login";

/// CloudProvider code of a cloud in a run.
fn cloud_code(run_code: &str, cloud: &CloudFixture) -> String {
    format!("{run_code}-{}", cloud.provider_type)
}

fn instance(i: usize, ns: &str, run_code: &str, args: &Args) -> EcsInstance {
    let cloud = args.clouds[i % args.clouds.len()];
    let code = cloud_code(run_code, cloud);
    let mut extra = json!({
        "region": cloud.region,
        "instanceType": cloud.instance_type,
        "systemDisk": {"sizeGiB": 40},
        "tags": {"bench": "operator-scale"},
    });
    // A password login where every cloud the instance may land on has one (AWS has none).
    let candidates: &[&CloudFixture] = if args.placement.is_some() {
        &args.clouds
    } else {
        std::slice::from_ref(&cloud)
    };
    if candidates.iter().all(|c| password_login(c)) {
        extra["passwordSecretRef"] = json!({"name": LOGIN_SECRET, "key": "password"});
    }
    if args.public_ip {
        extra["publicIp"] =
            json!({"allocate": true, "bandwidthMbps": 10, "bandwidthMode": "TRAFFIC"});
    }
    if args.ports {
        extra["openPorts"] = json!([22, 8888]);
    }
    if let Some(policy) = &args.placement {
        let candidates: Vec<_> = args
            .clouds
            .iter()
            .map(|c| json!({"provider": cloud_code(run_code, c), "region": c.region}))
            .collect();
        extra["placement"] = json!({"policy": policy, "candidates": candidates});
        extra["provider"] = serde_json::Value::Null;
        extra["region"] = serde_json::Value::Null;
        extra["instanceType"] = serde_json::Value::Null;
        extra["cpu"] = json!(2);
        extra["memoryGiB"] = json!(8);
    }
    let user = format!("user-{:03}", i % args.users);
    let mut manifest = instance_manifest(&format!("vm-{i:05}"), &code, &user, extra);
    manifest["metadata"]["namespace"] = json!(ns);
    serde_json::from_value(manifest).expect("EcsInstance from JSON")
}

/// Whether the cloud has password logins.
fn password_login(cloud: &CloudFixture) -> bool {
    multicloud_ecs::providers::registry()
        .profiles()
        .find(|p| p.provider_type == cloud.provider_type)
        .is_some_and(|p| p.password != mce_cloud::PasswordPolicy::Unsupported)
}

/// One EcsInstanceSet of `n` replicas whose template is instance 0's.
fn instance_set(n: usize, ns: &str, run_code: &str, args: &Args) -> serde_json::Value {
    let template = instance(0, ns, run_code, args);
    json!({
        "apiVersion": "ecs.multicloud.io/v1alpha1",
        "kind": "EcsInstanceSet",
        "metadata": {"name": "bench-set", "namespace": ns},
        "spec": {
            "replicas": n,
            "template": {"metadata": {"labels": {"bench": "operator-scale"}}, "spec": template.spec},
        },
    })
}

/// The tenant namespace with the credentials and login Secrets, and one CloudProvider per cloud
/// (named after the namespace and the cloud) on the emulator; returns their names.
async fn setup_namespace(
    client: &Client,
    ns: &str,
    tenant: &str,
    run_code: &str,
    endpoint: &str,
    clouds: &[&'static CloudFixture],
) -> Vec<String> {
    create_namespace(client, ns, &[(TENANT_LABEL, tenant)]).await;
    create_secret(client, ns, CREDENTIALS_SECRET, &EMULATOR_CREDENTIALS).await;
    create_secret(
        client,
        ns,
        LOGIN_SECRET,
        &[("password", "Bench-Passw0rd-2024")],
    )
    .await;
    let mut names = Vec::new();
    for cloud in clouds {
        let name = provider_name(ns, cloud);
        let code = cloud_code(run_code, cloud);
        let mut provider = provider_manifest_on(cloud, &name, &code, endpoint, ns, false);
        // Bursts no larger than the rate: the figures of the report were measured so.
        merge(
            &mut provider,
            json!({"spec": {"rateLimit": {"requestsPerSecond": 5000, "burst": 5000}}}),
        );
        Api::<DynamicObject>::all_with(client.clone(), &ar::<CloudProvider>())
            .create(&PostParams::default(), &dynamic(provider))
            .await
            .expect("create CloudProvider");
        names.push(name);
    }
    names
}

/// CloudProvider name of a cloud in a run.
fn provider_name(ns: &str, cloud: &CloudFixture) -> String {
    format!("{ns}-{}", cloud.provider_type.to_lowercase())
}

/// Deletes what the run created in the cluster, and waits until the namespace is gone. The
/// objects' finalizers would keep the namespace Terminating (the operator and the emulator are
/// gone), so the objects are removed one by one (finalizers stripped) before the namespace, and
/// the CloudProviders lose their finalizer (a later size's operator would otherwise release
/// them, writing during its measurement).
async fn cleanup_namespace(client: &Client, ns: &str, n: usize) {
    force_clear_namespace(client, ns).await;
    let dp = DeleteParams::background();
    let _ = Api::<Secret>::namespaced(client.clone(), ns)
        .delete_collection(&dp, &ListParams::default())
        .await;
    let providers = Api::<CloudProvider>::all(client.clone());
    let strip = kube::api::Patch::Merge(json!({"metadata": {"finalizers": null}}));
    for cloud in [&ALIYUN, &TENCENT, &AWS] {
        let name = provider_name(ns, cloud);
        if providers.delete(&name, &dp).await.is_ok() {
            let _ = providers
                .patch(&name, &kube::api::PatchParams::default(), &strip)
                .await;
        }
    }
    let _ = Api::<Namespace>::all(client.clone()).delete(ns, &dp).await;
    wait_namespace_gone(client, ns, n).await;
}

/// Waits (polling once a second, whatever N) until the namespace controller has deleted `ns`:
/// on a reused control plane the deletion of one size's objects must neither fall in the next
/// size's baseline nor in its measurement. Gives up after max(120 s, N × 0.05 s).
async fn wait_namespace_gone(client: &Client, ns: &str, n: usize) {
    let api = Api::<Namespace>::all(client.clone());
    let started = Instant::now();
    let limit = Duration::from_secs_f64((n as f64 * 0.05).max(120.0));
    loop {
        match api.get_opt(ns).await {
            Ok(None) => {
                eprintln!(
                    "namespace {ns} deleted after {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                return;
            }
            Ok(Some(_)) | Err(_) if started.elapsed() > limit => {
                eprintln!(
                    "namespace {ns} still there after {:.0} s; going on (its deletion may skew \
                     the next measurement)",
                    limit.as_secs_f64()
                );
                return;
            }
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

// ---------------------------------------------------------------- report helpers

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn pass(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

fn print_writes(
    title: &str,
    writes: &Writes,
    latency: &BTreeMap<(String, String), (f64, f64)>,
    n: f64,
) {
    println!("{title}");
    if writes.is_empty() {
        println!("    (none)");
        return;
    }
    println!(
        "    {:<28} {:<8} {:>5} {:>9} {:>13} {:>15}",
        "resource", "verb", "code", "count", "per instance", "mean latency"
    );
    for ((resource, verb, code), v) in writes {
        let note = if is_apiserver_own(resource) {
            "  (control plane's own, also written with no operator running)"
        } else {
            ""
        };
        let mean = latency
            .get(&(resource.clone(), verb.clone()))
            .map_or("-".to_string(), |(_, mean)| {
                format!("{:.1} ms", mean * 1000.0)
            });
        println!(
            "    {resource:<28} {verb:<8} {code:>5} {v:>9.0} {:>13.2} {mean:>15}{note}",
            v / n
        );
    }
    let mut by_resource: BTreeMap<&str, f64> = BTreeMap::new();
    for ((resource, _, _), v) in writes {
        *by_resource.entry(resource.as_str()).or_default() += v;
    }
    let total = operator_write_total(writes);
    println!(
        "    operator total {total:.0} = {:.2} per instance; by resource: {}",
        total / n,
        by_resource
            .iter()
            .filter(|(r, _)| !is_apiserver_own(r))
            .map(|(r, v)| format!("{r} {:.2}", v / n))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

fn print_calls(title: &str, calls: &BTreeMap<String, u64>, n: f64) {
    println!("{title}");
    if calls.is_empty() {
        println!("    (none)");
        return;
    }
    println!("    {:<36} {:>9} {:>13}", "action", "count", "per instance");
    for (action, v) in calls {
        println!("    {action:<36} {v:>9} {:>13.2}", *v as f64 / n);
    }
    let total: u64 = calls
        .iter()
        .filter(|(k, _)| !k.starts_with("error:"))
        .map(|(_, v)| v)
        .sum();
    println!("    total {total} = {:.2} per instance", total as f64 / n);
}

fn print_cpu(title: &str, procs: &Procs, before: &[f64], after: &[f64], wall: f64) {
    println!("{title} ({wall:.1} s wall; 2 cores = 200 %)");
    println!("    {:<16} {:>10} {:>10}", "process", "CPU s", "% of wall");
    let mut total = 0.0;
    for (i, (name, _)) in procs.list.iter().enumerate() {
        let d = after[i] - before[i];
        total += d;
        println!("    {name:<16} {d:>10.2} {:>9.0}%", 100.0 * d / wall);
    }
    println!(
        "    {:<16} {total:>10.2} {:>9.0}%",
        "sum",
        100.0 * total / wall
    );
    let k = procs.list.len();
    let machine = after[k] - before[k];
    let other = (machine - total).max(0.0);
    println!(
        "    {:<16} {other:>10.2} {:>9.0}%   (machine busy {:.0}% minus the above: other work on this host)",
        "other processes",
        100.0 * other / wall,
        100.0 * machine / wall
    );
}

/// Counts of the operator's JSON log lines: warnings by reason, notable info messages.
fn operator_log_summary(log: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(file) = std::fs::File::open(log) else {
        return out;
    };
    for line in BufReader::new(file).lines().map_while(Result::ok) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let level = v["level"].as_str().unwrap_or("?");
        let message = v["fields"]["message"].as_str().unwrap_or("?");
        let key = match v["fields"]["reason"].as_str() {
            Some(reason) => format!("{level} {message} [{reason}]"),
            None => format!("{level} {message}"),
        };
        *out.entry(key).or_default() += 1;
    }
    out
}

/// What happened in one measured window.
struct Window {
    writes: Writes,
    latency: BTreeMap<(String, String), (f64, f64)>,
    calls: BTreeMap<String, u64>,
    /// Increments of the operator's `multicloud_ecs_reconcile*` series.
    reconciles: BTreeMap<String, f64>,
    cpu0: Vec<f64>,
    cpu1: Vec<f64>,
    wall: f64,
}

fn print_window(what: &str, w: &Window, procs: &Procs, n: f64, note: Option<&str>) {
    println!();
    let title = match note {
        Some(note) => format!("API-server writes {what} ({note}):"),
        None => format!("API-server writes {what}:"),
    };
    print_writes(&title, &w.writes, &w.latency, n);
    println!();
    print_calls(
        &format!("Cloud calls {what} (emulator /_emulator/calls):"),
        &w.calls,
        n,
    );
    println!();
    println!("Operator reconciles {what} (its /metrics):");
    if w.reconciles.is_empty() {
        println!("    (none)");
    }
    let (mut sum, mut count) = (
        BTreeMap::<String, f64>::new(),
        BTreeMap::<String, f64>::new(),
    );
    for (series, v) in &w.reconciles {
        if let Some(rest) = series.strip_prefix("multicloud_ecs_reconcile_duration_seconds_sum") {
            sum.insert(rest.to_string(), *v);
        } else if let Some(rest) =
            series.strip_prefix("multicloud_ecs_reconcile_duration_seconds_count")
        {
            count.insert(rest.to_string(), *v);
        } else if !series.contains("_created") {
            println!("    {series:<80} {v:>8.0} {:>8.2}/instance", v / n);
        }
    }
    for (labels, c) in &count {
        let s = sum.get(labels).copied().unwrap_or(0.0);
        println!(
            "    mean reconcile duration {labels:<56} {:>8.1} ms over {c:.0}",
            1000.0 * s / c
        );
    }
    println!();
    print_cpu(&format!("CPU {what}"), procs, &w.cpu0, &w.cpu1, w.wall);
}

// ---------------------------------------------------------------- the run, step by step

/// The release-built binaries the run starts.
struct Binaries {
    operator: PathBuf,
    emulator: PathBuf,
}

impl Binaries {
    /// `cargo build --release` of both (a no-op when fresh), so no stale binary is measured.
    fn build() -> Self {
        eprintln!("building the operator and the emulator (release)...");
        Self {
            operator: operator_bin(Build::Always),
            emulator: emulator_bin(Build::Always),
        }
    }
}

/// A control plane with an admin client: a fresh one per measurement, or the one every size
/// reuses (`--shared-control-plane`, `--keep-control-plane`).
#[derive(Clone)]
struct Cluster {
    cp: Arc<ControlPlane>,
    client: Client,
}

impl Cluster {
    async fn start(args: &Args) -> Self {
        let (cp, client) = start_control_plane(args).await;
        Self {
            cp: Arc::new(cp),
            client,
        }
    }

    /// `reused`, else a fresh control plane (stopped when the last clone is dropped).
    async fn reuse_or_start(reused: Option<Cluster>, args: &Args) -> Self {
        match reused {
            Some(cluster) => cluster,
            None => Self::start(args).await,
        }
    }
}

/// The control plane (dedicated unless `--shared-control-plane`) and an admin client, with the
/// CRDs installed.
async fn start_control_plane(args: &Args) -> (ControlPlane, Client) {
    // Unique per run, so concurrent runs never share (or stop) each other's copy; a kept copy
    // has a fixed name so the next run reuses it.
    let dir_name = if args.keep_control_plane {
        "multicloud-ecs-bench-cp".to_string()
    } else {
        format!("multicloud-ecs-bench-cp-{}", std::process::id())
    };
    let state_dir = (!args.shared_control_plane).then(|| std::env::temp_dir().join(dir_name));
    let stop_on_drop = state_dir.is_some() && !args.keep_control_plane;
    let started = Instant::now();
    let mut cp = ControlPlane::up(state_dir).unwrap_or_else(|e| panic!("{e}"));
    if stop_on_drop {
        cp = cp.stop_on_drop();
    }
    eprintln!(
        "control plane up in {:.1} s ({}), kubeconfig {}",
        started.elapsed().as_secs_f64(),
        if args.shared_control_plane {
            "shared"
        } else {
            "dedicated"
        },
        cp.kubeconfig.display()
    );
    let client = cp.client().await;
    install_crds(&client).await;
    (cp, client)
}

/// Settle, before the operator (or the floor client) runs: a freshly started API server spends a
/// while at full CPU (start-up hooks, OpenAPI of the new CRDs); wait until it idles.
async fn settle(apiserver_pid: u32, ticks: f64) {
    let settle_start = Instant::now();
    loop {
        let c0 = cpu_seconds(apiserver_pid, ticks);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let share = (cpu_seconds(apiserver_pid, ticks) - c0) / 2.0;
        if share < 0.15 || settle_start.elapsed() > Duration::from_secs(120) {
            eprintln!(
                "kube-apiserver idle ({:.0}% CPU) after {:.0} s",
                share * 100.0,
                settle_start.elapsed().as_secs_f64()
            );
            break;
        }
    }
}

/// Baseline, before the operator runs: record what the control plane writes by itself (see
/// [`is_apiserver_own`]).
async fn baseline(client: &Client) {
    let baseline_seconds = 10.0;
    let b0 = scrape_apiserver(client).await;
    tokio::time::sleep(Duration::from_secs_f64(baseline_seconds)).await;
    let b1 = scrape_apiserver(client).await;
    let baseline = diff_writes(&b1.writes, &b0.writes);
    let mut background: BTreeSet<String> = baseline.keys().map(|(r, _, _)| r.clone()).collect();
    // Periodic every 10 s; a short baseline may miss one. The operator runs without leader
    // election, so it never writes either.
    background.extend(["leases".to_string(), "endpoints".to_string()]);
    *BACKGROUND.lock() = background;
    eprintln!(
        "baseline: control-plane writes with no operator in {baseline_seconds:.0} s: {:?}",
        baseline
    );
}

/// The operator process, JSON logs in `dir/operator.log`, `/metrics` on a free port (returned as
/// its base URL).
fn start_operator(bin: &Path, args: &Args, cp: &ControlPlane, dir: &Path) -> (Process, String) {
    let port = free_port();
    let mut cmd = operator::command(bin, &cp.kubeconfig);
    cmd.args(["--resync-seconds", &args.resync_seconds.to_string()])
        .args(["--probe-seconds", &args.probe_seconds.to_string()])
        .arg("--log-json")
        .args(["--http-addr", &format!("127.0.0.1:{port}")]);
    if let Some(c) = args.operator_concurrency {
        cmd.args(["--concurrency", &c.to_string()]);
    }
    let process = Process::spawn("operator", cmd, dir.join("operator.log"));
    (process, format!("http://127.0.0.1:{port}"))
}

/// Waits for the operator to report the CloudProvider `name` Available: it is up and its caches
/// sync.
async fn wait_provider_available(operator: &mut Process, client: &Client, name: &str) {
    let started = Instant::now();
    loop {
        operator.assert_alive();
        if provider_available(client, name).await {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "CloudProvider not Available after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "operator up (pid {}), CloudProvider {name} Available after {:.1} s; logs in {}",
        operator.pid(),
        started.elapsed().as_secs_f64(),
        operator.log.parent().unwrap_or(Path::new(".")).display()
    );
}

/// Where the counters of a window are read.
struct Probes<'a> {
    client: &'a Client,
    http: &'a reqwest::Client,
    operator_metrics: &'a str,
    emulator: &'a str,
    procs: &'a Procs,
}

/// Every counter a window is measured between.
struct Snapshot {
    api: ApiScrape,
    reconciles: BTreeMap<String, f64>,
    calls: BTreeMap<String, u64>,
    cpu: Vec<f64>,
}

impl Probes<'_> {
    async fn scrapes(&self) -> (ApiScrape, BTreeMap<String, f64>, BTreeMap<String, u64>) {
        (
            scrape_apiserver(self.client).await,
            scrape_operator(self.http, self.operator_metrics).await,
            emulator_calls(self.http, self.emulator).await,
        )
    }

    /// At the start of a window: CPU read last, so the scrapes' own cost falls outside it.
    async fn start(&self) -> Snapshot {
        let (api, reconciles, calls) = self.scrapes().await;
        let cpu = self.procs.cpu();
        Snapshot {
            api,
            reconciles,
            calls,
            cpu,
        }
    }

    /// At the end of a window: CPU read first, likewise.
    async fn end(&self) -> Snapshot {
        let cpu = self.procs.cpu();
        let (api, reconciles, calls) = self.scrapes().await;
        Snapshot {
            api,
            reconciles,
            calls,
            cpu,
        }
    }
}

impl Window {
    fn between(before: &Snapshot, after: &Snapshot, wall: f64) -> Self {
        Window {
            writes: diff_writes(&after.api.writes, &before.api.writes),
            latency: diff_latency(&after.api, &before.api),
            calls: diff_calls(&after.calls, &before.calls),
            reconciles: diff_map(&after.reconciles, &before.reconciles),
            cpu0: before.cpu.clone(),
            cpu1: after.cpu.clone(),
            wall,
        }
    }
}

/// The benchmark's own creates of EcsInstances, by (resource, verb, code), to subtract.
type OwnWrites = Arc<Mutex<BTreeMap<(String, String, String), f64>>>;
/// When each EcsInstance was created.
type CreatedAt = Arc<Mutex<HashMap<String, Instant>>>;

/// The apply of the N EcsInstances, running in the background.
struct Apply {
    /// The create task, until [`converge`] has collected it.
    task: Option<tokio::task::JoinHandle<Result<Vec<()>, String>>>,
    /// When the first create was sent.
    t0: Instant,
    own_writes: OwnWrites,
    created_at: CreatedAt,
}

impl Apply {
    /// Creates one EcsInstanceSet (its children are the objects that become Ready; they have
    /// no per-object create time).
    fn spawn_set(client: &Client, set: serde_json::Value) -> Self {
        let own_writes = OwnWrites::default();
        let own = own_writes.clone();
        let api = Api::<DynamicObject>::namespaced_with(
            client.clone(),
            set["metadata"]["namespace"].as_str().unwrap_or_default(),
            &ar::<multicloud_ecs::api::EcsInstanceSet>(),
        );
        let t0 = Instant::now();
        let task = tokio::spawn(async move {
            api.create(&PostParams::default(), &dynamic(set))
                .await
                .map_err(|e| format!("create EcsInstanceSet: {e}"))?;
            *own.lock()
                .entry(("ecsinstancesets".into(), "POST".into(), "201".into()))
                .or_default() += 1.0;
            Ok(vec![()])
        });
        Self {
            task: Some(task),
            t0,
            own_writes,
            created_at: CreatedAt::default(),
        }
    }

    /// Creates the objects, `concurrency` at a time (each retried up to 5 times), counting its
    /// own writes and when each was created. `objects` is consumed lazily: only the objects in
    /// flight are in memory.
    fn spawn(
        api: &Api<EcsInstance>,
        objects: impl Iterator<Item = EcsInstance> + Send + 'static,
        concurrency: usize,
    ) -> Self {
        let own_writes = OwnWrites::default();
        let created_at = CreatedAt::default();
        let (api, own, created) = (api.clone(), own_writes.clone(), created_at.clone());
        let t0 = Instant::now();
        let task = tokio::spawn(async move {
            futures::stream::iter(objects)
                .map(|obj| {
                    let api = api.clone();
                    let own = own.clone();
                    let created_at = created.clone();
                    async move {
                        let name = obj.name_any();
                        for attempt in 0.. {
                            let result = api.create(&PostParams::default(), &obj).await;
                            let code = match &result {
                                Ok(_) => "201".to_string(),
                                Err(kube::Error::Api(s)) => s.code.to_string(),
                                Err(_) => String::new(),
                            };
                            if !code.is_empty() {
                                *own.lock()
                                    .entry(("ecsinstances".into(), "POST".into(), code))
                                    .or_default() += 1.0;
                            }
                            match result {
                                Ok(_) => {
                                    created_at.lock().insert(name, Instant::now());
                                    return Ok(());
                                }
                                Err(e) if attempt < 5 => {
                                    eprintln!("create {name}: {e} (retrying)");
                                    tokio::time::sleep(Duration::from_millis(200)).await;
                                }
                                Err(e) => return Err(format!("create {name}: {e}")),
                            }
                        }
                        unreachable!()
                    }
                })
                .buffer_unordered(concurrency)
                .try_collect::<Vec<()>>()
                .await
        });
        Self {
            task: Some(task),
            t0,
            own_writes,
            created_at,
        }
    }
}

impl Drop for Apply {
    /// A create task still running (the run timed out or failed) stops with it.
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// How the convergence went.
struct Convergence {
    converged: bool,
    /// Seconds from the first apply until all were Ready (or the timeout).
    wall: f64,
    /// Seconds until the last create returned.
    applied_in: Option<f64>,
    /// (t, created, ready) every 5 s.
    timeline: Vec<(f64, usize, usize)>,
}

/// Waits until all N are Ready (and all created) or `--timeout-seconds`, checking the operator
/// is alive and printing progress (CPU shares, RSS, reasons of the not Ready) every 5 s.
async fn converge(
    n: usize,
    timeout: Duration,
    apply: &mut Apply,
    operator: &mut Process,
    readiness: &Mutex<Readiness>,
    procs: &Procs,
    cpu_0: &[f64],
) -> Convergence {
    let t0 = apply.t0;
    let mut applied_in: Option<f64> = None;
    let mut last_print = Instant::now();
    let mut prev_cpu = cpu_0.to_vec();
    let mut prev_t = Instant::now();
    let mut timeline: Vec<(f64, usize, usize)> = Vec::new();
    let converged = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        operator.assert_alive();
        if let Some(handle) = &apply.task
            && handle.is_finished()
        {
            let handle = apply.task.take().expect("apply task");
            handle
                .await
                .expect("apply task")
                .unwrap_or_else(|e| panic!("{e}"));
            applied_in = Some(t0.elapsed().as_secs_f64());
            eprintln!("  all {n} created in {:.1} s", t0.elapsed().as_secs_f64());
        }
        let (ready, created) = (readiness.lock().ready, apply.created_at.lock().len());
        if ready >= n && apply.task.is_none() {
            break true;
        }
        if t0.elapsed() > timeout {
            break false;
        }
        if last_print.elapsed() >= Duration::from_secs(5) {
            let cpu = procs.cpu();
            let dt = prev_t.elapsed().as_secs_f64();
            let mut shares: Vec<String> = procs
                .list
                .iter()
                .enumerate()
                .map(|(i, (name, _))| format!("{name} {:.0}%", 100.0 * (cpu[i] - prev_cpu[i]) / dt))
                .collect();
            let k = procs.list.len();
            shares.push(format!(
                "machine {:.0}%",
                100.0 * (cpu[k] - prev_cpu[k]) / dt
            ));
            let reasons = readiness.lock().not_ready_reasons();
            eprintln!(
                "  t={:>5.1}s created {created:>5} ready {ready:>5} | cpu: {} | rss {:.0} MiB | not ready: {reasons:?}",
                t0.elapsed().as_secs_f64(),
                shares.join(", "),
                status_mib(operator.pid(), "VmRSS"),
            );
            timeline.push((t0.elapsed().as_secs_f64(), created, ready));
            prev_cpu = cpu;
            prev_t = Instant::now();
            last_print = Instant::now();
        }
    };
    Convergence {
        converged,
        wall: t0.elapsed().as_secs_f64(),
        applied_in,
        timeline,
    }
}

/// (times from the first apply at which each object was first seen Ready, per-object
/// created → Ready latencies), both sorted.
fn ready_latencies(readiness: &Mutex<Readiness>, apply: &Apply) -> (Vec<f64>, Vec<f64>) {
    let (mut ready_times, mut latencies) = (Vec::new(), Vec::new());
    {
        let r = readiness.lock();
        let c = apply.created_at.lock();
        for (name, at) in &r.ready_at {
            ready_times.push(at.duration_since(apply.t0).as_secs_f64());
            if let Some(created) = c.get(name) {
                latencies.push(at.saturating_duration_since(*created).as_secs_f64());
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    ready_times.sort_by(f64::total_cmp);
    (ready_times, latencies)
}

/// The steady-state window after convergence: what the operator does with nothing to do, and
/// the lowest Ready count seen meanwhile.
async fn steady_window(
    n: usize,
    seconds: u64,
    probes: &Probes<'_>,
    operator: &mut Process,
    readiness: &Mutex<Readiness>,
) -> (Window, usize) {
    let before = probes.start().await;
    let s0 = Instant::now();
    let end = s0 + Duration::from_secs(seconds);
    let mut min_ready = n;
    while Instant::now() < end {
        tokio::time::sleep(
            Duration::from_millis(500).min(end.saturating_duration_since(Instant::now())),
        )
        .await;
        operator.assert_alive();
        min_ready = min_ready.min(readiness.lock().ready);
    }
    let wall = s0.elapsed().as_secs_f64();
    let after = probes.end().await;
    (Window::between(&before, &after, wall), min_ready)
}

/// Everything the report prints.
struct Results {
    n: usize,
    convergence: Convergence,
    ready_times: Vec<f64>,
    latencies: Vec<f64>,
    not_ready: BTreeMap<String, usize>,
    /// Operator VmHWM at the end, VmRSS before the apply, at convergence and at the end (MiB).
    hwm: f64,
    rss: (f64, f64, f64),
    apiserver_hwm: String,
    conv: Window,
    steady: Option<(Window, usize)>,
    operator_log: PathBuf,
    log_summary: BTreeMap<String, u64>,
}

fn report(args: &Args, r: &Results, procs: &Procs) {
    let (n, nf) = (r.n, r.n as f64);
    let (converged, converge_wall) = (r.convergence.converged, r.convergence.wall);
    let (rss_start, rss_converged, rss_end) = r.rss;
    let hwm = r.hwm;
    println!();
    println!(
        "operator_scale: N={n} EcsInstances over {} users (public IP: {}, ports: {}), emulator boot delay {} ms,",
        args.users,
        args.public_ip,
        if args.ports { "22,8888" } else { "none" },
        args.boot_delay_ms
    );
    println!(
        "  apply concurrency {}, operator concurrency {}, resync {} s, probe {} s, provider rate limit 5000/s burst 5000, {} control plane",
        args.apply_concurrency,
        args.operator_concurrency
            .map_or("default".to_string(), |c| c.to_string()),
        args.resync_seconds,
        args.probe_seconds,
        if args.shared_control_plane {
            "shared"
        } else {
            "dedicated"
        }
    );
    println!();
    println!("  {:<44} {:>16}   goal", "metric", "value");
    let ready_line = if converged {
        format!("{converge_wall:.1} s")
    } else {
        format!(
            "NOT converged ({} of {n} in {converge_wall:.0} s)",
            r.ready_times.len()
        )
    };
    println!(
        "  {:<44} {:>16}   < 60 s for N=1000: {}",
        "time from first apply to all Ready",
        ready_line,
        if n >= 1000 {
            pass(converged && converge_wall < 60.0)
        } else {
            "-"
        }
    );
    println!(
        "  {:<44} {:>16}",
        "  all created (client side) after",
        r.convergence
            .applied_in
            .map_or("-".into(), |t| format!("{t:.1} s"))
    );
    println!(
        "  {:<44} {:>16}",
        "  Ready count reached 50% / 90% / 100% at",
        format!(
            "{:.1} / {:.1} / {:.1} s",
            percentile(&r.ready_times, 0.5),
            percentile(&r.ready_times, 0.9),
            percentile(&r.ready_times, 1.0)
        )
    );
    println!(
        "  {:<44} {:>16}",
        "  per object created→Ready p50 / p99 / max",
        format!(
            "{:.1} / {:.1} / {:.1} s",
            percentile(&r.latencies, 0.5),
            percentile(&r.latencies, 0.99),
            percentile(&r.latencies, 1.0)
        )
    );
    println!(
        "  {:<44} {:>16}   < 100 MiB: {}",
        "operator peak RSS (VmHWM)",
        format!("{hwm:.1} MiB"),
        pass(hwm < 100.0)
    );
    println!(
        "  {:<44} {:>16}",
        "  RSS before apply / converged / end",
        format!("{rss_start:.0} / {rss_converged:.0} / {rss_end:.0} MiB")
    );
    println!(
        "  {:<44} {:>16}",
        "API-server writes per instance (converge)",
        format!("{:.2}", operator_write_total(&r.conv.writes) / nf)
    );
    let cloud_total: u64 = r
        .conv
        .calls
        .iter()
        .filter(|(k, _)| !k.starts_with("error:"))
        .map(|(_, v)| v)
        .sum();
    println!(
        "  {:<44} {:>16}",
        "cloud calls per instance (converge)",
        format!("{:.2}", cloud_total as f64 / nf)
    );
    if let Some((window, min_ready)) = &r.steady {
        let wall = window.wall;
        let total = operator_write_total(&window.writes);
        let calls: u64 = window
            .calls
            .iter()
            .filter(|(k, _)| !k.starts_with("error:"))
            .map(|(_, v)| v)
            .sum();
        println!(
            "  {:<44} {:>16}   0: {}",
            format!("steady-state API-server writes ({wall:.0} s)"),
            format!("{total:.0}"),
            pass(total == 0.0)
        );
        println!(
            "  {:<44} {:>16}",
            format!("steady-state cloud calls ({wall:.0} s)"),
            format!("{calls} ({:.2}/instance)", calls as f64 / nf)
        );
        println!(
            "  {:<44} {:>16}",
            "  min Ready count during steady state", min_ready
        );
    }
    println!("  control plane peak RSS: {}", r.apiserver_hwm);
    if !r.not_ready.is_empty() {
        println!("  not Ready at the end, by reason: {:?}", r.not_ready);
    }
    println!();
    print_window(
        "during convergence",
        &r.conv,
        procs,
        nf,
        Some("the benchmark's own creates subtracted"),
    );
    if let Some((window, _)) = &r.steady {
        print_window(
            &format!("during steady state ({:.0} s)", window.wall),
            window,
            procs,
            nf,
            None,
        );
    }
    println!();
    println!(
        "Operator log lines (level, message [reason]): {}",
        r.operator_log.display()
    );
    for (k, v) in &r.log_summary {
        println!("    {v:>7}  {k}");
    }
    if !r.convergence.timeline.is_empty() {
        println!();
        println!(
            "Timeline (t, created, ready): {}",
            r.convergence
                .timeline
                .iter()
                .map(|(t, c, r)| format!("{t:.0}s {c}/{r}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// The operator's figures at one size, for the comparison table.
struct Summary {
    n: usize,
    converged: bool,
    /// Objects Ready at the end of the convergence window.
    ready: usize,
    /// Seconds from the first apply to all Ready (or the timeout).
    wall: f64,
    writes_per_instance: f64,
    status_writes_per_instance: f64,
    calls_per_instance: f64,
    /// Steady window: (seconds, operator writes, cloud calls).
    steady: Option<(f64, f64, u64)>,
    /// Operator VmHWM (MiB).
    hwm: f64,
}

fn cloud_call_total(calls: &BTreeMap<String, u64>) -> u64 {
    calls
        .iter()
        .filter(|(k, _)| !k.starts_with("error:"))
        .map(|(_, v)| v)
        .sum()
}

impl Summary {
    fn of(r: &Results) -> Self {
        let nf = r.n as f64;
        let status_writes: f64 = r
            .conv
            .writes
            .iter()
            .filter(|((resource, _, _), _)| resource == "ecsinstances/status")
            .map(|(_, v)| v)
            .sum();
        Summary {
            n: r.n,
            converged: r.convergence.converged,
            ready: r.ready_times.len(),
            wall: r.convergence.wall,
            writes_per_instance: operator_write_total(&r.conv.writes) / nf,
            status_writes_per_instance: status_writes / nf,
            calls_per_instance: cloud_call_total(&r.conv.calls) as f64 / nf,
            steady: r.steady.as_ref().map(|(w, _)| {
                (
                    w.wall,
                    operator_write_total(&w.writes),
                    cloud_call_total(&w.calls),
                )
            }),
            hwm: r.hwm,
        }
    }
}

/// One size of the run: the operator's figures and the floor's, each absent if its measurement
/// failed (or the floor is off).
struct Row {
    n: usize,
    operator: Option<Summary>,
    floor: Option<floor::Floor>,
}

/// Measures every size in turn, each on a fresh control plane and emulator (unless one is
/// reused), then prints the comparison table. A size whose measurement fails (a panic: the
/// operator exited, a timeout of a set-up step) is reported as such and the next one runs.
async fn run(args: Args) {
    let bins = Arc::new(Binaries::build());
    let reused = if args.shared_control_plane || args.keep_control_plane {
        Some(Cluster::start(&args).await)
    } else {
        None
    };
    let mut rows = Vec::new();
    for (k, &n) in args.sizes.iter().enumerate() {
        let size_args = args.for_size(n);
        eprintln!(
            "==== N={n} ({} of {}), convergence timeout {} s",
            k + 1,
            args.sizes.len(),
            size_args.timeout().as_secs()
        );
        let operator = tokio::spawn(measure_operator(
            bins.clone(),
            size_args.clone(),
            reused.clone(),
        ))
        .await
        .inspect_err(|e| eprintln!("N={n}: the operator measurement failed: {e}"))
        .ok();
        let floor = if args.floor_enabled() {
            eprintln!("==== N={n}: the raw status-write floor (no operator)");
            let reused = reused.clone();
            let floor = tokio::spawn(async move {
                let cluster = Cluster::reuse_or_start(reused, &size_args).await;
                floor::measure(size_args, cluster).await
            });
            floor
                .await
                .inspect_err(|e| eprintln!("N={n}: the floor measurement failed: {e}"))
                .ok()
        } else {
            None
        };
        if let Some(f) = &floor {
            floor::print(f, operator.as_ref().map(|o| o.writes_per_instance));
        }
        rows.push(Row { n, operator, floor });
    }
    print_comparison(&args, &rows);
    drop(reused);
}

/// The table of every size: the operator's figures, and its time to Ready as a multiple of the
/// floor; then the floor client's figures.
fn print_comparison(args: &Args, rows: &[Row]) {
    let control_plane = if args.shared_control_plane {
        "the shared control plane for every size"
    } else if args.keep_control_plane {
        "one kept dedicated control plane for every size"
    } else {
        "a fresh dedicated control plane and emulator per size"
    };
    println!();
    println!(
        "operator_scale comparison: clouds {}, {} users, public IP {}, ports {}, boot delay {} ms, \
         apply concurrency {}, operator concurrency {}, resync {} s{}; {control_plane}",
        args.clouds
            .iter()
            .map(|c| c.provider_type)
            .collect::<Vec<_>>()
            .join(","),
        args.users,
        args.public_ip,
        if args.ports { "22,8888" } else { "none" },
        args.boot_delay_ms,
        args.apply_concurrency,
        args.operator_concurrency
            .map_or("default".to_string(), |c| c.to_string()),
        args.resync_seconds,
        if args.set { ", one EcsInstanceSet" } else { "" },
    );
    println!();
    println!(
        "  {:>7} {:>15} {:>11} {:>8} {:>10} {:>13} {:>13} {:>10} {:>9} {:>8}",
        "N",
        "to all Ready",
        "writes/inst",
        "(status)",
        "calls/inst",
        "steady writes",
        "steady calls",
        "op. RSS",
        "floor",
        "× floor"
    );
    println!(
        "  {:>7} {:>15} {:>11} {:>8} {:>10} {:>13} {:>13} {:>10} {:>9} {:>8}",
        "", "", "", "", "", "/inst/resync", "/inst/resync", "peak", "", ""
    );
    for row in rows {
        let Some(o) = &row.operator else {
            println!("  {:>7} {:>15}", row.n, "FAILED (see above)");
            continue;
        };
        let to_ready = if o.converged {
            format!("{:.1} s", o.wall)
        } else {
            format!("no: {}/{}", o.ready, o.n)
        };
        let per_resync = |count: f64, wall: f64| {
            count / o.n as f64 / (wall / args.resync_seconds.max(1) as f64).max(1e-9)
        };
        let (steady_writes, steady_calls) = match o.steady {
            Some((wall, writes, calls)) => (
                format!("{:.3}", per_resync(writes, wall)),
                format!("{:.3}", per_resync(calls as f64, wall)),
            ),
            None => ("-".to_string(), "-".to_string()),
        };
        let floor_seconds = row
            .floor
            .as_ref()
            .map(|f| f.seconds_for(o.n, o.writes_per_instance));
        let (floor, multiple) = match floor_seconds {
            Some(fs) if fs > 0.0 => (
                format!("{fs:.1} s"),
                format!("{}{:.1}", if o.converged { "" } else { ">" }, o.wall / fs),
            ),
            _ => ("-".to_string(), "-".to_string()),
        };
        println!(
            "  {:>7} {to_ready:>15} {:>11.2} {:>8} {:>10.2} {steady_writes:>13} {steady_calls:>13} {:>10} {floor:>9} {multiple:>8}",
            o.n,
            o.writes_per_instance,
            format!("({:.2})", o.status_writes_per_instance),
            o.calls_per_instance,
            format!("{:.1} MiB", o.hwm),
        );
    }
    println!();
    println!(
        "  to all Ready: first apply → every EcsInstance Ready (no: Ready/N at the timeout); \
         writes/inst: the operator's API-server writes during convergence / N (status: those on \
         ecsinstances/status); calls/inst: cloud calls / N;"
    );
    println!(
        "  steady …/inst/resync: count in the steady window / N / (window / resync s); op. RSS: \
         the operator's VmHWM;"
    );
    println!(
        "  floor: floor_seconds(N) = N × writes/inst / (status writes per s of the floor client at \
         N); × floor = to all Ready / floor (> when not converged)."
    );
    if rows.iter().any(|r| r.floor.is_some()) {
        println!();
        println!(
            "  Raw status-write floor (no operator; creates of the same manifests {} in flight, \
             then {} status writes per object by server-side apply as {}, {} in flight; measured \
             at each size, {}):",
            args.apply_concurrency,
            floor::WRITES_PER_OBJECT,
            multicloud_ecs::controller::context::FIELD_MANAGER,
            args.floor_concurrency,
            if args.shared_control_plane || args.keep_control_plane {
                "on the reused control plane"
            } else {
                "each on a fresh control plane"
            }
        );
        println!(
            "  {:>7} {:>10} {:>16} {:>24} {:>18} {:>9}",
            "N",
            "creates/s",
            "status writes/s",
            "apiserver CPU s/1000 w",
            "etcd CPU s/1000 w",
            "floor"
        );
        for row in rows {
            let Some(f) = &row.floor else {
                continue;
            };
            let floor_seconds = row.operator.as_ref().map_or("-".to_string(), |o| {
                format!("{:.1} s", f.seconds_for(f.n, o.writes_per_instance))
            });
            println!(
                "  {:>7} {:>10.1} {:>16.1} {:>24.2} {:>18.2} {floor_seconds:>9}",
                f.n,
                f.creates.rate(),
                f.status.rate(),
                f.status.apiserver_cpu_per_1000(),
                f.status.etcd_cpu_per_1000(),
            );
        }
        println!("  (CPU per 1000 writes: of the status-write phase)");
    }
    println!();
    println!(
        "  this benchmark's own peak RSS over the run: {:.0} MiB",
        status_mib(std::process::id(), "VmHWM")
    );
}

/// The whole measurement of the operator at one size: emulator, tenant, baseline, operator,
/// apply, convergence, steady state, report.
async fn measure_operator(bins: Arc<Binaries>, args: Args, reused: Option<Cluster>) -> Summary {
    let run_id = format!("{:08x}", rand::random::<u32>());
    let dir = tmp_dir(&format!("operator-scale-{run_id}"));
    let n = args.instances;

    // The cluster, the cloud and the tenant.
    let cluster = Cluster::reuse_or_start(reused, &args).await;
    let (cp, client) = (&cluster.cp, &cluster.client);
    let emulator = start_emulator(&bins.emulator, &args, &dir).await;
    let http = reqwest::Client::new();
    let ns = format!("bench-scale-{run_id}");
    let tenant = format!("bench-{run_id}");
    let code = format!("BENCH-{}", run_id.to_uppercase());
    let providers = setup_namespace(
        client,
        &ns,
        &tenant,
        &code,
        &emulator.base_url,
        &args.clouds,
    )
    .await;

    let ticks = clock_ticks();
    let cp_pids = cp.pids();
    let apiserver_pid = cp_pids
        .iter()
        .find(|(name, _)| *name == "kube-apiserver")
        .map(|(_, pid)| *pid)
        .expect("kube-apiserver pid");
    settle(apiserver_pid, ticks).await;
    baseline(client).await;

    // The operator.
    let (mut operator, operator_metrics) = start_operator(&bins.operator, &args, cp, &dir);
    for name in &providers {
        wait_provider_available(&mut operator, client, name).await;
    }
    let operator_pid = operator.pid();
    let mut list = vec![
        ("operator", operator_pid),
        ("emulator", emulator.process.pid()),
    ];
    list.extend(cp_pids);
    list.push(("bench (self)", std::process::id()));
    let procs = Procs { list, ticks };
    let probes = Probes {
        client,
        http: &http,
        operator_metrics: &operator_metrics,
        emulator: &emulator.base_url,
        procs: &procs,
    };

    let api = Api::<EcsInstance>::namespaced(client.clone(), &ns);
    let readiness = Arc::new(Mutex::new(Readiness::default()));
    let watch = spawn_watch(api.clone(), readiness.clone());

    // Settle: let the operator finish its start-up writes before the baseline.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let start = probes.start().await;
    let rss_start = status_mib(operator_pid, "VmRSS");

    // Apply N, concurrently, and wait for all Ready.
    eprintln!(
        "applying {n} EcsInstances ({} in flight)...",
        args.apply_concurrency
    );
    let mut apply = if args.set {
        Apply::spawn_set(client, instance_set(n, &ns, &code, &args))
    } else {
        let (ns, code, a) = (ns.clone(), code.clone(), args.clone());
        let objects = (0..n).map(move |i| instance(i, &ns, &code, &a));
        Apply::spawn(&api, objects, args.apply_concurrency)
    };
    let convergence = converge(
        n,
        args.timeout(),
        &mut apply,
        &mut operator,
        &readiness,
        &procs,
        &start.cpu,
    )
    .await;
    let converged_at = probes.end().await;
    let rss_converged = status_mib(operator_pid, "VmRSS");
    let (ready_times, latencies) = ready_latencies(&readiness, &apply);
    let not_ready = readiness.lock().not_ready_reasons();
    let mut conv = Window::between(&start, &converged_at, convergence.wall);
    subtract(&mut conv.writes, &apply.own_writes.lock());

    // Steady state.
    let steady = if convergence.converged && args.steady_seconds > 0 {
        eprintln!(
            "converged in {:.1} s; steady state for {} s...",
            convergence.wall, args.steady_seconds
        );
        Some(steady_window(n, args.steady_seconds, &probes, &mut operator, &readiness).await)
    } else {
        None
    };
    let hwm = status_mib(operator_pid, "VmHWM");
    let rss_end = status_mib(operator_pid, "VmRSS");
    let apiserver_hwm = procs
        .list
        .iter()
        .filter(|(name, _)| *name == "kube-apiserver" || *name == "etcd")
        .map(|(name, pid)| format!("{name} {:.0} MiB", status_mib(*pid, "VmHWM")))
        .collect::<Vec<_>>()
        .join(", ");

    // Stop the operator and the emulator before cleaning up, so nothing reacts to it.
    let operator_log = operator.log.clone();
    drop(operator);
    drop(emulator);
    drop(watch);
    let results = Results {
        n,
        convergence,
        ready_times,
        latencies,
        not_ready,
        hwm,
        rss: (rss_start, rss_converged, rss_end),
        apiserver_hwm,
        conv,
        steady,
        log_summary: operator_log_summary(&operator_log),
        operator_log,
    };
    report(&args, &results, &procs);
    let summary = Summary::of(&results);
    drop(results);

    if !cp.stops_on_drop() {
        eprintln!("deleting namespace {ns} and its objects...");
        cleanup_namespace(client, &ns, n).await;
    }
    drop(cluster);
    summary
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        tokio::select! {
            () = run(args) => {}
            _ = tokio::signal::ctrl_c() => eprintln!("interrupted; cleaning up"),
        }
    });
}
