//! One running instance of a filter: its store, sandboxed (a memory cap,
//! an epoch deadline per call), its root context started and configured,
//! and the callbacks the host makes into it for each HTTP stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmtime::{Store, Trap, TypedFunc};

use crate::abi::Action;
use crate::exchange::Exchange;
use crate::host::{Host, Shared};
use crate::module::{Compiled, TICK, engine};

/// The root context's id: the one the configuration belongs to.
const ROOT: i32 = 1;

/// What each filter call may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest one callback may run.
    pub deadline: Duration,
    /// Most linear memory one instance may have, in bytes.
    pub memory: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            deadline: Duration::from_millis(100),
            memory: 64 * 1024 * 1024,
        }
    }
}

/// How a filter failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A callback ran past its deadline.
    Deadline,
    /// It reached its memory cap.
    Memory,
    /// It trapped: a panic, an out-of-bounds access, an unsupported call.
    Trap,
    /// It would not start or refused its configuration.
    Refused,
    /// It paused the request and nothing would resume it.
    Paused,
    /// It failed too often in a row and is not run for a while.
    Suspended,
}

impl FailureKind {
    /// Every kind, in the order of their numbers.
    pub const ALL: [FailureKind; 6] = [
        FailureKind::Deadline,
        FailureKind::Memory,
        FailureKind::Trap,
        FailureKind::Refused,
        FailureKind::Paused,
        FailureKind::Suspended,
    ];

    /// The label of the failures metric.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Deadline => "deadline",
            FailureKind::Memory => "memory",
            FailureKind::Trap => "trap",
            FailureKind::Refused => "refused",
            FailureKind::Paused => "paused",
            FailureKind::Suspended => "suspended",
        }
    }
}

/// A filter's failure, with what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The stream callbacks of the HTTP filter ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    RequestHeaders,
    RequestBody,
    ResponseHeaders,
    ResponseBody,
}

type Stream = TypedFunc<(i32, i32, i32), i32>;

struct Callbacks {
    context_create: TypedFunc<(i32, i32), ()>,
    request_headers: Option<Stream>,
    request_body: Option<Stream>,
    response_headers: Option<Stream>,
    response_body: Option<Stream>,
    done: Option<TypedFunc<i32, i32>>,
    log: Option<TypedFunc<i32, ()>>,
    delete: Option<TypedFunc<i32, ()>>,
}

/// One instance, used by one thread.
pub struct Vm {
    store: Store<Host>,
    callbacks: Callbacks,
    /// Tells this instance from the one that replaces it after a failure.
    pub generation: u64,
    next_context: i32,
    ticks: u64,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("generation", &self.generation)
            .finish()
    }
}

static GENERATIONS: AtomicU64 = AtomicU64::new(1);

impl Vm {
    /// Instantiates `module` and starts its root context with `config`.
    pub fn start(
        name: &Arc<str>,
        module: &Compiled,
        config: &Arc<[u8]>,
        shared: &Arc<Shared>,
        limits: Limits,
    ) -> Result<Vm, Failure> {
        let host = Host::new(name.clone(), config.clone(), limits.memory, shared.clone());
        let mut store = Store::new(engine(), host);
        store.limiter(|host| &mut host.cap);
        store.epoch_deadline_trap();
        let ticks = (limits.deadline.as_millis() as u64).div_ceil(TICK.as_millis() as u64) + 1;
        store.set_epoch_deadline(ticks);
        let instance = module
            .pre
            .instantiate(&mut store)
            .map_err(|e| classify(&e, &store, "it could not be instantiated"))?;
        let memory = instance.get_memory(&mut store, "memory");
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, "proxy_on_memory_allocate")
            .or_else(|_| instance.get_typed_func::<i32, i32>(&mut store, "malloc"))
            .ok();
        let host = store.data_mut();
        host.memory = memory;
        host.alloc = alloc;
        let refused = |why: String| Failure {
            kind: FailureKind::Refused,
            message: why,
        };
        let context_create = instance
            .get_typed_func(&mut store, "proxy_on_context_create")
            .map_err(|e| refused(format!("its proxy_on_context_create is not the ABI's: {e}")))?;
        let stream =
            |store: &mut Store<Host>, name: &str| instance.get_typed_func(store, name).ok();
        let callbacks = Callbacks {
            context_create,
            request_headers: stream(&mut store, "proxy_on_request_headers"),
            request_body: stream(&mut store, "proxy_on_request_body"),
            response_headers: stream(&mut store, "proxy_on_response_headers"),
            response_body: stream(&mut store, "proxy_on_response_body"),
            done: instance.get_typed_func(&mut store, "proxy_on_done").ok(),
            log: instance.get_typed_func(&mut store, "proxy_on_log").ok(),
            delete: instance.get_typed_func(&mut store, "proxy_on_delete").ok(),
        };
        let mut vm = Vm {
            store,
            callbacks,
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
            next_context: ROOT + 1,
            ticks,
        };
        if let Ok(init) = instance.get_typed_func::<(), ()>(&mut vm.store, "_initialize") {
            vm.guarded(|store| init.call(store, ()), "its _initialize failed")?;
        }
        let create = vm.callbacks.context_create.clone();
        vm.guarded(
            |store| create.call(store, (ROOT, 0)),
            "its root context failed",
        )?;
        if let Ok(start) =
            instance.get_typed_func::<(i32, i32), i32>(&mut vm.store, "proxy_on_vm_start")
            && vm.guarded(|store| start.call(store, (ROOT, 0)), "it failed to start")? == 0
        {
            return Err(refused(
                "it refused to start (proxy_on_vm_start returned false)".into(),
            ));
        }
        let configure = instance
            .get_typed_func::<(i32, i32), i32>(&mut vm.store, "proxy_on_configure")
            .map_err(|e| refused(format!("its proxy_on_configure is not the ABI's: {e}")))?;
        let size = config.len() as i32;
        if vm.guarded(
            |store| configure.call(store, (ROOT, size)),
            "its configuration failed",
        )? == 0
        {
            return Err(refused(
                "it refused its configuration (proxy_on_configure returned false)".into(),
            ));
        }
        Ok(vm)
    }

    /// A new stream context; its id.
    pub fn open(&mut self) -> Result<i32, Failure> {
        let id = self.next_context;
        self.next_context = self.next_context.wrapping_add(1).max(ROOT + 1);
        let create = self.callbacks.context_create.clone();
        self.guarded(
            |store| create.call(store, (id, ROOT)),
            "its stream context failed",
        )?;
        Ok(id)
    }

    /// One stream callback of context `id`, over `exchange`.
    pub fn phase(
        &mut self,
        id: i32,
        phase: Phase,
        size: usize,
        end: bool,
        exchange: &mut Exchange,
    ) -> Result<Action, Failure> {
        let callback = match phase {
            Phase::RequestHeaders => &self.callbacks.request_headers,
            Phase::RequestBody => &self.callbacks.request_body,
            Phase::ResponseHeaders => &self.callbacks.response_headers,
            Phase::ResponseBody => &self.callbacks.response_body,
        };
        let Some(callback) = callback.clone() else {
            return Ok(Action::Continue);
        };
        std::mem::swap(&mut self.store.data_mut().exchange, exchange);
        let result = self.guarded(
            |store| callback.call(store, (id, size as i32, i32::from(end))),
            "it failed",
        );
        std::mem::swap(&mut self.store.data_mut().exchange, exchange);
        result.map(Action::from_raw)
    }

    /// Ends context `id`: done, log, delete, as a proxy ends a stream.
    pub fn close(&mut self, id: i32) -> Result<(), Failure> {
        if let Some(done) = self.callbacks.done.clone() {
            self.guarded(|store| done.call(store, id), "its on_done failed")?;
        }
        if let Some(log) = self.callbacks.log.clone() {
            self.guarded(|store| log.call(store, id), "its on_log failed")?;
        }
        if let Some(delete) = self.callbacks.delete.clone() {
            self.guarded(|store| delete.call(store, id), "its on_delete failed")?;
        }
        Ok(())
    }

    /// Runs one call within the deadline, telling its failure.
    fn guarded<R>(
        &mut self,
        call: impl FnOnce(&mut Store<Host>) -> wasmtime::Result<R>,
        context: &str,
    ) -> Result<R, Failure> {
        self.store.set_epoch_deadline(self.ticks);
        call(&mut self.store).map_err(|e| classify(&e, &self.store, context))
    }
}

/// What kind of failure `error` is, and its message.
fn classify(error: &wasmtime::Error, store: &Store<Host>, context: &str) -> Failure {
    let kind = if store.data().cap.hit {
        FailureKind::Memory
    } else if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        FailureKind::Deadline
    } else {
        FailureKind::Trap
    };
    let message = match kind {
        FailureKind::Deadline => format!("{context}: it ran past its deadline"),
        FailureKind::Memory => format!(
            "{context}: it reached its memory cap of {} bytes",
            store.data().cap.memory
        ),
        _ => {
            let why = format!("{error:#}");
            format!("{context}: {}", why.lines().next().unwrap_or_default())
        }
    };
    Failure { kind, message }
}
