//! A chain of attached filters run over one request, in order, as Envoy
//! runs its HTTP filters: every filter's request headers, then every
//! filter's request body, then the response's the same way.
//!
//! Each thread keeps one instance per attachment, made on first use: the
//! gateway's workers are single-threaded, so a request's callbacks all run
//! on its worker's instances, and instances are never shared between
//! threads. An instance that failed is thrown away and made again for the
//! next request. An attachment's instances live as long as a request or a
//! chain holds the attachment: a new chain (a filter swapped, reordered,
//! configured) serves new requests while those in flight finish on the old.

use std::cell::RefCell;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;

use crate::abi::Action;
use crate::exchange::{Exchange, LocalResponse};
use crate::host::Shared;
use crate::module::Compiled;
use crate::vm::{Failure, FailureKind, Limits, Phase, Vm};

/// A filter attached to a tenant or a service, with its configuration.
#[derive(Debug)]
pub struct Attachment {
    /// The filter's name.
    pub name: Arc<str>,
    pub module: Arc<Compiled>,
    /// Its configuration, as `proxy_on_configure` reads it.
    pub config: Arc<[u8]>,
    /// Whether a request passes on without this filter when it fails
    /// (otherwise the request is refused).
    pub fail_open: bool,
    pub stats: Stats,
    pub limits: Limits,
    shared: Arc<Shared>,
    id: u64,
    /// Failures in a row, of any request.
    streak: AtomicU32,
    /// Until when (milliseconds on [`clock`]) it is suspended.
    suspended_until: AtomicU64,
}

/// After this many failures in a row a filter is suspended...
const SUSPEND_AFTER: u32 = 5;
/// ...for this long: its requests fail as attached without running it, so a
/// filter that fails every call (a spin, a cap) costs each request nothing,
/// not a deadline's worth of a worker.
const SUSPENSION: Duration = Duration::from_secs(10);

/// Milliseconds since the first call.
fn clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

static IDS: AtomicU64 = AtomicU64::new(1);

impl Attachment {
    /// An attachment; `stats` may outlive it (the gateway keeps them by
    /// name, so that counters survive a swap).
    pub fn new(
        name: &str,
        module: Arc<Compiled>,
        config: &[u8],
        fail_open: bool,
        limits: Limits,
        stats: Stats,
    ) -> Arc<Attachment> {
        Arc::new(Attachment {
            name: name.into(),
            module,
            config: config.into(),
            fail_open,
            stats,
            limits,
            shared: Arc::default(),
            id: IDS.fetch_add(1, Ordering::Relaxed),
            streak: AtomicU32::new(0),
            suspended_until: AtomicU64::new(0),
        })
    }

    /// Why it is not run now, while suspended.
    fn suspended(&self) -> Option<Failure> {
        let until = self.suspended_until.load(Ordering::Relaxed);
        (until > clock()).then(|| Failure {
            kind: FailureKind::Suspended,
            message: format!(
                "it failed {} times in a row and is suspended for {} s",
                self.streak.load(Ordering::Relaxed),
                SUSPENSION.as_secs()
            ),
        })
    }

    fn succeeded(&self) {
        if self.streak.load(Ordering::Relaxed) != 0 {
            self.streak.store(0, Ordering::Relaxed);
        }
    }

    fn failed(&self) {
        if self.streak.fetch_add(1, Ordering::Relaxed) + 1 >= SUSPEND_AFTER {
            self.suspended_until
                .store(clock() + SUSPENSION.as_millis() as u64, Ordering::Relaxed);
        }
    }

    /// Starts an instance once, to tell whether the filter accepts its
    /// configuration. Call it off the async threads.
    pub fn check(&self) -> Result<(), Failure> {
        Vm::start(
            &self.name,
            &self.module,
            &self.config,
            &self.shared,
            self.limits,
        )
        .map(drop)
    }
}

/// An attachment's counters: Prometheus counters, so that the gateway
/// exports the very numbers the filters page shows.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Requests the filter saw.
    pub requests: Counter,
    /// Answers the filter gave itself (`send_local_response`).
    pub local_responses: Counter,
    failures: [Counter; FailureKind::ALL.len()],
    last_failure: Arc<Mutex<Option<String>>>,
}

impl Stats {
    /// Counters made by `counter` for the requests, the local responses,
    /// and the failures of each kind.
    pub fn new(mut counter: impl FnMut(Count) -> Counter) -> Stats {
        Stats {
            requests: counter(Count::Requests),
            local_responses: counter(Count::LocalResponses),
            failures: FailureKind::ALL.map(|kind| counter(Count::Failures(kind))),
            last_failure: Arc::default(),
        }
    }

    /// Failures of `kind`.
    pub fn failures(&self, kind: FailureKind) -> u64 {
        self.failures[kind as usize].get()
    }

    /// The last failure's message.
    pub fn last_failure(&self) -> Option<String> {
        self.last_failure.lock().clone()
    }

    fn failed(&self, failure: &Failure) {
        self.failures[failure.kind as usize].inc();
        *self.last_failure.lock() = Some(failure.message.clone());
    }
}

/// What a counter of [`Stats`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Requests,
    LocalResponses,
    Failures(FailureKind),
}

/// What the chain decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// Go on, with the exchange as the filters left it.
    Continue,
    /// Answer this instead.
    Respond(LocalResponse),
}

/// A failure of a filter that fails closed: the request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The filter that failed.
    pub filter: Arc<str>,
    pub failure: Failure,
}

struct Slot {
    owner: Weak<Attachment>,
    vm: Vm,
}

thread_local! {
    static INSTANCES: RefCell<HashMap<u64, Slot>> = RefCell::new(HashMap::new());
}

/// One request's way through a chain.
#[derive(Debug)]
pub struct Run {
    chain: Vec<Arc<Attachment>>,
    /// Each filter's stream context: the instance's generation and the id.
    contexts: Vec<Option<(u64, i32)>>,
    /// Filters that failed open: skipped for the rest of the request.
    skipped: Vec<bool>,
    /// Response body each filter held back (it paused for more).
    held: Vec<Vec<u8>>,
}

impl Run {
    /// A run of `chain`, in order.
    pub fn new(chain: Vec<Arc<Attachment>>) -> Run {
        let n = chain.len();
        Run {
            chain,
            contexts: vec![None; n],
            skipped: vec![false; n],
            held: vec![Vec::new(); n],
        }
    }

    /// The request's headers, then its body (all of it, when there is one).
    pub fn request(&mut self, exchange: &mut Exchange) -> Result<Flow, Refusal> {
        let body = !exchange.request_body.is_empty();
        let flow = self.through_all(Phase::RequestHeaders, !body, exchange)?;
        if flow != Flow::Continue || !body {
            return Ok(flow);
        }
        self.through_all(Phase::RequestBody, true, exchange)
    }

    /// The response's headers; `end` when no body follows.
    pub fn response_headers(
        &mut self,
        exchange: &mut Exchange,
        end: bool,
    ) -> Result<Flow, Refusal> {
        self.through_all(Phase::ResponseHeaders, end, exchange)
    }

    /// One callback of every filter in order, until one answers for itself.
    fn through_all(
        &mut self,
        phase: Phase,
        end: bool,
        exchange: &mut Exchange,
    ) -> Result<Flow, Refusal> {
        for i in 0..self.chain.len() {
            let size = match phase {
                Phase::RequestHeaders => exchange.request_headers.len(),
                Phase::RequestBody => exchange.request_body.len(),
                Phase::ResponseHeaders => exchange.response_headers.len(),
                Phase::ResponseBody => exchange.response_body.len(),
            };
            if let Some(flow @ Flow::Respond(_)) = self.phase(i, phase, size, end, exchange)? {
                return Ok(flow);
            }
        }
        Ok(Flow::Continue)
    }

    /// A piece of the response body (`exchange.response_body`); `end` with
    /// the last. A filter that pauses before the end keeps what it saw and
    /// is given it again with the next piece; what is left in
    /// `exchange.response_body` passes on.
    pub fn response_body(&mut self, exchange: &mut Exchange, end: bool) -> Result<Flow, Refusal> {
        for i in 0..self.chain.len() {
            if self.skipped[i] {
                continue;
            }
            if !self.held[i].is_empty() {
                let mut all = std::mem::take(&mut self.held[i]);
                all.extend_from_slice(&exchange.response_body);
                exchange.response_body = all;
            }
            let size = exchange.response_body.len();
            match self.phase(i, Phase::ResponseBody, size, end, exchange)? {
                Some(flow @ Flow::Respond(_)) => return Ok(flow),
                Some(Flow::Continue) => {}
                None => {
                    self.held[i] = std::mem::take(&mut exchange.response_body);
                    return Ok(Flow::Continue);
                }
            }
        }
        Ok(Flow::Continue)
    }

    /// One filter's callback. `None` when it paused for more of the body.
    fn phase(
        &mut self,
        i: usize,
        phase: Phase,
        size: usize,
        end: bool,
        exchange: &mut Exchange,
    ) -> Result<Option<Flow>, Refusal> {
        if self.skipped[i] {
            return Ok(Some(Flow::Continue));
        }
        let attachment = self.chain[i].clone();
        let context = self.contexts[i];
        let result = if let Some(failure) = attachment.suspended() {
            Err(failure)
        } else {
            with_instance(&attachment, |vm| {
                let id = match context {
                    Some((generation, id)) if generation == vm.generation => id,
                    // The instance that had this stream failed since: told below.
                    Some(_) => return Ok(None),
                    None => {
                        attachment.stats.requests.inc();
                        vm.open()?
                    }
                };
                let action = vm.phase(id, phase, size, end, exchange)?;
                Ok(Some(((vm.generation, id), action)))
            })
            .and_then(|done| {
                done.ok_or_else(|| Failure {
                    kind: FailureKind::Trap,
                    message: "its instance failed on another request since this one began".into(),
                })
            })
        };
        let failure = match result {
            Ok((opened, action)) => {
                if context.is_none() {
                    self.contexts[i] = Some(opened);
                }
                attachment.succeeded();
                if std::mem::take(&mut exchange.reset) {
                    exchange.local_response = Some(reset_answer(&attachment.name));
                }
                if let Some(local) = exchange.local_response.take() {
                    attachment.stats.local_responses.inc();
                    return Ok(Some(Flow::Respond(local)));
                }
                match (action, end) {
                    (Action::Continue, _) => return Ok(Some(Flow::Continue)),
                    (Action::Pause, false) if phase == Phase::ResponseBody => return Ok(None),
                    (Action::Pause, false) => return Ok(Some(Flow::Continue)),
                    (Action::Pause, true) => Failure {
                        kind: FailureKind::Paused,
                        message: "it paused the request at its end, and nothing would resume it (HTTP callouts are not offered)".into(),
                    },
                }
            }
            Err(failure) => failure,
        };
        exchange.local_response = None;
        exchange.reset = false;
        attachment.stats.failed(&failure);
        if failure.kind != FailureKind::Suspended {
            attachment.failed();
        }
        tracing::warn!(
            filter = &*attachment.name,
            reason = failure.kind.as_str(),
            fail_open = attachment.fail_open,
            "{failure}"
        );
        if attachment.fail_open {
            self.skipped[i] = true;
            Ok(Some(Flow::Continue))
        } else {
            Err(Refusal {
                filter: attachment.name.clone(),
                failure,
            })
        }
    }
}

/// The answer to a request a filter reset (`reset_http_request`).
fn reset_answer(filter: &str) -> LocalResponse {
    LocalResponse {
        status: 403,
        headers: vec![("content-type".into(), b"application/json".to_vec())],
        body: format!(
            r#"{{"error":{{"message":"filter {filter} reset the request","type":"permission_error","code":"filter_reset"}}}}"#
        )
        .into_bytes(),
    }
}

/// Runs `call` on this thread's instance of `attachment`, starting one
/// when there is none; an instance whose call failed is dropped.
fn with_instance<R>(
    attachment: &Arc<Attachment>,
    call: impl FnOnce(&mut Vm) -> Result<R, Failure>,
) -> Result<R, Failure> {
    INSTANCES.with(|instances| {
        let mut instances = instances.borrow_mut();
        if !instances.contains_key(&attachment.id) {
            // Instances of attachments no longer held anywhere go first.
            instances.retain(|_, slot| slot.owner.strong_count() > 0);
        }
        let slot = match instances.entry(attachment.id) {
            Entry::Occupied(slot) => slot.into_mut(),
            Entry::Vacant(empty) => empty.insert(Slot {
                owner: Arc::downgrade(attachment),
                vm: Vm::start(
                    &attachment.name,
                    &attachment.module,
                    &attachment.config,
                    &attachment.shared,
                    attachment.limits,
                )?,
            }),
        };
        let result = call(&mut slot.vm);
        if result.is_err() {
            instances.remove(&attachment.id);
        }
        result
    })
}

impl Drop for Run {
    fn drop(&mut self) {
        for (attachment, context) in self.chain.iter().zip(&self.contexts) {
            let Some((generation, id)) = *context else {
                continue;
            };
            let closed = INSTANCES.try_with(|instances| {
                let mut instances = instances.try_borrow_mut().ok()?;
                let slot = instances.get_mut(&attachment.id)?;
                if slot.vm.generation != generation {
                    return None;
                }
                let result = slot.vm.close(id);
                if result.is_err() {
                    instances.remove(&attachment.id);
                }
                result.err()
            });
            if let Ok(Some(failure)) = closed {
                attachment.stats.failed(&failure);
            }
        }
    }
}
