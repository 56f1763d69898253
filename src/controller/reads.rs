//! Coalesced cloud reads. Every EcsInstance checks its instance on each resync; asked one by one
//! that is one DescribeInstances per instance. Here concurrent asks for the same provider and
//! region share one DescribeInstances of up to [`MAX_IDS`] ids: the first asker waits a short
//! window for others to join, makes the call with its own driver and hands each joiner its
//! answer. A joiner whose leader is cancelled asks the cloud itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mce_cloud::{CloudDriver, CloudResult, Instance};
use parking_lot::Mutex;
use tokio::sync::oneshot;

/// Ids per DescribeInstances: what Alibaba (`InstanceIds`), Tencent (`InstanceIds`) and EC2
/// (`InstanceId.N` with `MaxResults`) accept in one page.
pub const MAX_IDS: usize = 100;

/// How long the first ask waits for others while objects converge: short, it delays the
/// object's progress.
pub const CONVERGING_WINDOW: Duration = Duration::from_millis(20);
/// How long it waits on a periodic resync: resyncs of many objects are spread over a tenth of
/// the period, so a longer wait gathers many more ids per call.
pub const RESYNC_WINDOW: Duration = Duration::from_millis(250);

type Answer = CloudResult<Option<Instance>>;

#[derive(Default)]
struct Batch {
    ids: Vec<String>,
    joiners: Vec<(String, oneshot::Sender<Answer>)>,
    /// Told when the batch is full: its leader sends it without waiting out the window.
    full: Arc<tokio::sync::Notify>,
}

/// (CloudProvider name, region).
type BatchKey = (String, String);

/// Batches of DescribeInstances being gathered, per provider and region.
#[derive(Default)]
pub struct InstanceReads {
    open: Mutex<HashMap<BatchKey, Arc<Mutex<Batch>>>>,
    /// Calls made and ids asked, for metrics and tests.
    stats: Mutex<ReadStats>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub calls: u64,
    pub ids: u64,
}

/// Takes a leader's batch out of the open ones, so no one joins it after the call has started
/// or after the leader was cancelled.
struct Closing<'a> {
    open: &'a Mutex<HashMap<BatchKey, Arc<Mutex<Batch>>>>,
    key: BatchKey,
    batch: Arc<Mutex<Batch>>,
}

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        let mut open = self.open.lock();
        if open
            .get(&self.key)
            .is_some_and(|b| Arc::ptr_eq(b, &self.batch))
        {
            open.remove(&self.key);
        }
    }
}

enum Role {
    Leader(Arc<Mutex<Batch>>),
    Joiner(oneshot::Receiver<Answer>),
}

impl InstanceReads {
    pub fn stats(&self) -> ReadStats {
        *self.stats.lock()
    }

    /// The instance `id` of `provider` in `region` (`None`: the cloud does not know it), read
    /// together with the other asks made within `window`.
    pub async fn describe(
        &self,
        driver: &dyn CloudDriver,
        provider: &str,
        region: &str,
        id: &str,
        window: Duration,
    ) -> Answer {
        self.describe_with(provider, region, id, window, async |ids: Vec<String>| {
            driver.describe_instances(region, &ids).await
        })
        .await
    }

    /// [`Self::describe`] with the DescribeInstances call given as `call`.
    async fn describe_with(
        &self,
        provider: &str,
        region: &str,
        id: &str,
        window: Duration,
        call: impl AsyncFnOnce(Vec<String>) -> CloudResult<Vec<Instance>>,
    ) -> Answer {
        let key = (provider.to_string(), region.to_string());
        let role = {
            let mut open = self.open.lock();
            match open.get(&key).cloned() {
                Some(batch) => {
                    let (tx, rx) = oneshot::channel();
                    let mut b = batch.lock();
                    if !b.ids.iter().any(|i| i == id) {
                        b.ids.push(id.to_string());
                    }
                    b.joiners.push((id.to_string(), tx));
                    if b.ids.len() >= MAX_IDS {
                        // Full: the next ask opens a new batch, and this one goes now.
                        open.remove(&key);
                        b.full.notify_one();
                    }
                    Role::Joiner(rx)
                }
                None => {
                    let batch = Arc::new(Mutex::new(Batch {
                        ids: vec![id.to_string()],
                        ..Batch::default()
                    }));
                    open.insert(key.clone(), batch.clone());
                    Role::Leader(batch)
                }
            }
        };
        let pick = |result: &CloudResult<Vec<Instance>>, want: &str| -> Answer {
            match result {
                Ok(found) => Ok(found.iter().find(|i| i.id == want).cloned()),
                Err(e) => Err(e.clone()),
            }
        };
        match role {
            Role::Joiner(rx) => match rx.await {
                Ok(answer) => answer,
                // The leader was cancelled before answering.
                Err(_) => {
                    self.count(1);
                    pick(&call(vec![id.to_string()]).await, id)
                }
            },
            Role::Leader(batch) => {
                // Closes the batch however this future ends: cancelled, its joiners' senders
                // drop with it and they ask for themselves.
                let closing = Closing {
                    open: &self.open,
                    key,
                    batch: batch.clone(),
                };
                let full = batch.lock().full.clone();
                // Under load a batch fills long before the window ends.
                let _ = tokio::time::timeout(window, full.notified()).await;
                drop(closing);
                let (ids, joiners) = {
                    let mut b = batch.lock();
                    (std::mem::take(&mut b.ids), std::mem::take(&mut b.joiners))
                };
                self.count(ids.len());
                let result = call(ids).await;
                for (want, tx) in joiners {
                    // A joiner that went away needs no answer.
                    let _ = tx.send(pick(&result, &want));
                }
                pick(&result, id)
            }
        }
    }

    fn count(&self, ids: usize) {
        let mut stats = self.stats.lock();
        stats.calls += 1;
        stats.ids += ids as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mce_cloud::InstanceStatus;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn instance(id: &str) -> Instance {
        Instance {
            id: id.into(),
            status: InstanceStatus::Running,
            instance_type: "t".into(),
            zone: "z".into(),
            private_ip: None,
            public_ip: None,
            eip_allocation_id: None,
            tags: Default::default(),
        }
    }

    /// A cloud that knows every id except `gone-*`, counting its calls.
    async fn ask(reads: &InstanceReads, calls: &AtomicUsize, region: &str, id: String) -> Answer {
        reads
            .describe_with(
                "P",
                region,
                &id,
                Duration::from_millis(30),
                async |ids: Vec<String>| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    assert!(ids.len() <= MAX_IDS);
                    Ok(ids
                        .iter()
                        .filter(|i| !i.starts_with("gone-"))
                        .map(|i| instance(i))
                        .collect())
                },
            )
            .await
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_goes_without_waiting_out_the_window() {
        let reads = InstanceReads::default();
        let calls = AtomicUsize::new(0);
        let started = tokio::time::Instant::now();
        let asks = (0..MAX_IDS).map(|i| {
            let (reads, calls) = (&reads, &calls);
            async move {
                reads
                    .describe_with(
                        "P",
                        "r1",
                        &format!("i-{i}"),
                        Duration::from_secs(60),
                        async |ids: Vec<String>| {
                            calls.fetch_add(1, Ordering::SeqCst);
                            Ok(ids.iter().map(|i| instance(i)).collect())
                        },
                    )
                    .await
            }
        });
        let answers = futures::future::join_all(asks).await;
        assert!(answers.iter().all(|a| matches!(a, Ok(Some(_)))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn concurrent_asks_share_one_call_per_hundred_ids() {
        let reads = InstanceReads::default();
        let calls = AtomicUsize::new(0);
        let asks = (0..250).map(|i| {
            let id = if i % 50 == 0 {
                format!("gone-{i}")
            } else {
                format!("i-{i}")
            };
            ask(&reads, &calls, "r1", id)
        });
        let answers = futures::future::join_all(asks).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3, "250 ids in batches of 100");
        for (i, answer) in answers.into_iter().enumerate() {
            let found = answer.expect("answer");
            if i % 50 == 0 {
                assert!(found.is_none());
            } else {
                assert_eq!(found.map(|f| f.id), Some(format!("i-{i}")));
            }
        }
        assert_eq!(reads.stats(), ReadStats { calls: 3, ids: 250 });
    }

    #[tokio::test]
    async fn regions_are_not_mixed_and_errors_reach_every_asker() {
        let reads = InstanceReads::default();
        let calls = AtomicUsize::new(0);
        let (a, b) = tokio::join!(
            ask(&reads, &calls, "r1", "i-1".into()),
            ask(&reads, &calls, "r2", "i-1".into())
        );
        assert!(a.unwrap().is_some() && b.unwrap().is_some());
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        let failing = async |_: Vec<String>| -> CloudResult<Vec<Instance>> {
            Err(mce_cloud::CloudError::new(
                mce_cloud::ErrorClass::Throttled,
                "P",
                "DescribeInstances",
                "Throttling",
                "slow down",
            ))
        };
        let w = Duration::from_millis(30);
        let (a, b) = tokio::join!(
            reads.describe_with("P", "r1", "i-1", w, failing),
            reads.describe_with("P", "r1", "i-2", w, failing)
        );
        assert_eq!(a.unwrap_err().code, "Throttling");
        assert_eq!(b.unwrap_err().code, "Throttling");
    }

    #[tokio::test]
    async fn a_joiner_whose_leader_is_cancelled_asks_itself() {
        let reads = InstanceReads::default();
        let calls = AtomicUsize::new(0);
        let mut leader = Box::pin(ask(&reads, &calls, "r1", "i-1".into()));
        assert!(
            futures::poll!(&mut leader).is_pending(),
            "the leader opened a batch"
        );
        let mut joiner = Box::pin(ask(&reads, &calls, "r1", "i-2".into()));
        assert!(
            futures::poll!(&mut joiner).is_pending(),
            "the joiner joined it"
        );
        drop(leader);
        let answer = joiner.await.expect("answer");
        assert_eq!(answer.map(|i| i.id).as_deref(), Some("i-2"));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "the joiner's own call");
    }
}
