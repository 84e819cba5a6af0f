//! The scheduler thread: it alone owns the llama.cpp context and runs
//! continuous batching over it.
//!
//! Each step it admits queued jobs into free sequence slots, drops sequences
//! whose client went away, then builds one batch holding the next token of
//! every decoding sequence plus a chunk of prompt tokens of sequences still
//! being prefilled, runs one `llama_decode`, and samples one token for every
//! sequence that asked for logits. A long prompt therefore delays the other
//! sequences by one chunk per step at most instead of stalling them.
//!
//! A finished sequence leaves its tokens in its slot's KV stream; a new job
//! goes to the free slot sharing the longest prefix with its prompt and
//! evaluates only the rest (as llama.cpp's server does), which makes repeated
//! prompts and the growing history of a chat cheap to start.

use parking_lot::{Condvar, Mutex, MutexGuard};
use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::Instant;

use autoglm_inference::{FinishReason, GenerationEvent, InferenceError, SamplingParams};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc::UnboundedSender;

use crate::text::{Released, TextStream};

/// A request accepted by `submit`, waiting for a sequence slot.
#[derive(Debug)]
pub(crate) struct Job {
    pub prompt: Vec<LlamaToken>,
    pub params: SamplingParams,
    pub events: UnboundedSender<GenerationEvent>,
    /// When it was submitted: its queue wait ends when a sequence takes it.
    pub queued_at: Instant,
}

#[derive(Debug, Default)]
struct Queue {
    pending: VecDeque<Job>,
    /// Set when the generator is dropped, or the scheduler thread has ended.
    closed: bool,
}

/// What `submit` and the scheduler thread share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Jobs accepted and not yet finished, queued or decoding.
    unfinished: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding this lock leaves the queue consistent (plain
        // pushes and pops), so poisoning carries no information here.
        self.queue.lock()
    }

    /// Queues a job; refuses it once the scheduler is gone.
    pub(crate) fn enqueue(&self, job: Job) -> Result<(), InferenceError> {
        let mut queue = self.lock();
        if queue.closed {
            return Err(InferenceError::Engine("the generator has shut down".into()));
        }
        self.unfinished.fetch_add(1, Ordering::SeqCst);
        queue.pending.push_back(job);
        drop(queue);
        self.wake.notify_one();
        Ok(())
    }

    pub(crate) fn unfinished(&self) -> usize {
        self.unfinished.load(Ordering::SeqCst)
    }

    /// Stops the scheduler after its current step; queued jobs fail.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_all();
    }

    fn finished_one(&self) {
        self.unfinished.fetch_sub(1, Ordering::SeqCst);
    }

    /// Fails every queued job; used when the scheduler ends for any reason.
    fn fail_pending(&self, why: &str) {
        let pending: Vec<Job> = {
            let mut queue = self.lock();
            queue.closed = true;
            queue.pending.drain(..).collect()
        };
        for job in pending {
            let _ = job
                .events
                .send(GenerationEvent::Failed(InferenceError::Engine(why.into())));
            self.finished_one();
        }
    }
}

/// Context settings the thread needs; plain numbers so they cross threads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ContextConfig {
    pub max_sequences: usize,
    pub context_per_sequence: usize,
    pub threads: usize,
    pub prefill_chunk: usize,
}

impl ContextConfig {
    fn batch_capacity(&self) -> usize {
        self.prefill_chunk + self.max_sequences
    }

    fn params(&self) -> Result<LlamaContextParams, String> {
        let n_ctx = self.max_sequences * self.context_per_sequence;
        let n_ctx = u32::try_from(n_ctx)
            .ok()
            .and_then(NonZeroU32::new)
            .ok_or("context size out of range")?;
        let n_batch =
            u32::try_from(self.batch_capacity()).map_err(|_| "batch size out of range")?;
        let n_seq = u32::try_from(self.max_sequences).map_err(|_| "too many sequences")?;
        let threads = i32::try_from(self.threads).map_err(|_| "too many threads")?;
        // Not unified: each sequence gets its own KV stream of
        // `context_per_sequence` cells, so attention in a batched step reads
        // only that sequence's cells rather than masking the whole cache.
        Ok(LlamaContextParams::default()
            .with_n_ctx(Some(n_ctx))
            .with_n_batch(n_batch)
            .with_n_ubatch(n_batch)
            .with_n_seq_max(n_seq)
            .with_kv_unified(false)
            .with_n_threads(threads)
            .with_n_threads_batch(threads)
            .with_no_perf(true))
    }
}

/// One sequence slot of the context: its own KV stream.
#[derive(Default)]
struct Slot {
    sequence: Option<Sequence>,
    /// Tokens whose KV cells hold positions `0..cached.len()` of this slot.
    cached: Vec<LlamaToken>,
    /// When the slot was last given a job, for least-recently-used reuse.
    last_used: u64,
}

/// One sequence in a slot of the context.
struct Sequence {
    events: UnboundedSender<GenerationEvent>,
    prompt: Vec<LlamaToken>,
    /// Prompt tokens already in the KV cache.
    prefilled: usize,
    /// Prompt tokens found in the slot's cache at admission.
    reused: usize,
    /// Completion tokens decoded into the KV cache, to be left as cache.
    decoded: Vec<LlamaToken>,
    /// Token sampled last step, to be decoded this step.
    next: Option<LlamaToken>,
    /// Position `next` takes.
    position: usize,
    sampler: LlamaSampler,
    max_tokens: usize,
    completion_tokens: usize,
    text: TextStream,
    /// Admission order, so prompt chunks go first come, first served.
    admitted: u64,
    /// Where this sequence's logits are in the current batch.
    logits_at: Option<i32>,
    started: Instant,
    /// From submission to this sequence taking the job.
    queue_wait: std::time::Duration,
}

impl Sequence {
    fn new(job: Job, admitted: u64, reused: usize) -> Self {
        let sampler = sampler_for(&job.params);
        Self {
            events: job.events,
            prompt: job.prompt,
            prefilled: reused,
            reused,
            decoded: Vec::new(),
            next: None,
            position: reused,
            sampler,
            max_tokens: usize::try_from(job.params.max_tokens).unwrap_or(usize::MAX),
            completion_tokens: 0,
            text: TextStream::new(job.params.stop),
            admitted,
            logits_at: None,
            started: Instant::now(),
            queue_wait: job.queued_at.elapsed(),
        }
    }

    fn done(&self, finish_reason: FinishReason) -> GenerationEvent {
        GenerationEvent::Done {
            prompt_tokens: self.prompt.len(),
            cached_tokens: self.reused,
            completion_tokens: self.completion_tokens,
            queue_wait: self.queue_wait,
            finish_reason,
        }
    }
}

/// The sampler chain for a request, in llama.cpp's own order.
fn sampler_for(params: &SamplingParams) -> LlamaSampler {
    if params.temperature == 0.0 {
        return LlamaSampler::greedy();
    }
    let mut chain = Vec::with_capacity(4);
    if params.top_k > 0 {
        chain.push(LlamaSampler::top_k(
            i32::try_from(params.top_k).unwrap_or(i32::MAX),
        ));
    }
    if params.top_p < 1.0 {
        chain.push(LlamaSampler::top_p(params.top_p, 1));
    }
    chain.push(LlamaSampler::temp(params.temperature));
    chain.push(LlamaSampler::dist(seed_for(params.seed)));
    LlamaSampler::chain(chain, true)
}

/// llama.cpp seeds are 32 bits, and `u32::MAX` means "pick one at random",
/// so a requested seed must never map to it.
fn seed_for(seed: Option<u64>) -> u32 {
    match seed {
        Some(seed) => {
            let folded = (seed ^ (seed >> 32)) as u32;
            if folded == u32::MAX {
                folded - 1
            } else {
                folded
            }
        }
        None => rand::random::<u32>() & (u32::MAX - 1),
    }
}

/// The thread's body: creates the context, reports readiness, then loops.
pub(crate) fn run(
    model: Arc<LlamaModel>,
    config: ContextConfig,
    shared: Arc<Shared>,
    ready: SyncSender<Result<(), String>>,
) {
    let context = config.params().and_then(|params| {
        model
            .new_context(crate::backend(), params)
            .map_err(|e| e.to_string())
    });
    let context = match context {
        Ok(context) => context,
        Err(why) => {
            let _ = ready.send(Err(format!("cannot create the llama.cpp context: {why}")));
            shared.fail_pending("the generator failed to start");
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let mut scheduler = Scheduler {
        model: &model,
        context,
        batch: LlamaBatch::new(config.batch_capacity(), 1),
        slots: (0..config.max_sequences).map(|_| Slot::default()).collect(),
        shared: &shared,
        config,
        admitted: 0,
    };
    scheduler.run();
    scheduler.fail_all("the generator has shut down");
    shared.fail_pending("the generator has shut down");
}

struct Scheduler<'m> {
    model: &'m LlamaModel,
    context: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    slots: Vec<Slot>,
    shared: &'m Shared,
    config: ContextConfig,
    admitted: u64,
}

impl Scheduler<'_> {
    fn run(&mut self) {
        while self.admit() {
            let step = catch_unwind(AssertUnwindSafe(|| self.step()));
            if step.is_err() {
                // A panic mid-step leaves the sequences' positions out of
                // step with the KV cache, so none of them can go on.
                tracing::error!("llama.cpp scheduler step panicked; failing its sequences");
                self.fail_all("the engine failed during decoding");
            }
        }
    }

    /// Moves queued jobs into free slots; blocks while there is nothing to
    /// do. False once the generator is closed.
    fn admit(&mut self) -> bool {
        let mut queue = self.shared.lock();
        loop {
            if queue.closed {
                return false;
            }
            while self.slots.iter().any(|slot| slot.sequence.is_none()) {
                let Some(job) = queue.pending.pop_front() else {
                    break;
                };
                if job.events.is_closed() {
                    self.shared.finished_one();
                    continue;
                }
                self.start(job);
            }
            if self.slots.iter().any(|slot| slot.sequence.is_some()) {
                return true;
            }
            self.shared.wake.wait(&mut queue);
        }
    }

    /// Puts `job` in the free slot whose cache shares the longest prefix
    /// with its prompt (else the least recently used one), keeping that
    /// prefix's KV cells. The caller has checked that a slot is free.
    fn start(&mut self, job: Job) {
        let Some((index, common)) = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.sequence.is_none())
            .map(|(index, slot)| (index, common_prefix(&slot.cached, &job.prompt)))
            .max_by_key(|&(index, common)| {
                (common, std::cmp::Reverse(self.slots[index].last_used))
            })
        else {
            let why = InferenceError::Engine("no free sequence slot".into());
            let _ = job.events.send(GenerationEvent::Failed(why));
            self.shared.finished_one();
            return;
        };
        // The last prompt token is always evaluated again: its logits are
        // what the first completion token is sampled from.
        let mut reused = common.min(job.prompt.len().saturating_sub(1));
        if !self.forget_from(index, reused) {
            reused = 0;
            self.forget_from(index, 0);
        }
        self.admitted += 1;
        tracing::debug!(
            slot = index,
            prompt_tokens = job.prompt.len(),
            reused,
            "sequence admitted"
        );
        let slot = &mut self.slots[index];
        slot.last_used = self.admitted;
        slot.sequence = Some(Sequence::new(job, self.admitted, reused));
    }

    /// Removes slot `index`'s KV cells from position `from` on. False when
    /// llama.cpp refuses (a partial removal some memory kinds cannot do).
    fn forget_from(&mut self, index: usize, from: usize) -> bool {
        let slot = &mut self.slots[index];
        slot.cached.truncate(from);
        let (Ok(id), Ok(from)) = (u32::try_from(index), u32::try_from(from)) else {
            return false;
        };
        let removed = self.context.clear_kv_cache_seq(Some(id), Some(from), None);
        if !matches!(removed, Ok(true)) {
            slot.cached.clear();
            return false;
        }
        true
    }

    fn step(&mut self) {
        self.drop_cancelled();
        self.batch.clear();
        if let Err(why) = self.fill_batch() {
            tracing::error!(%why, "cannot build the batch");
            self.fail_all("the engine failed to build a batch");
            return;
        }
        if self.batch.n_tokens() == 0 {
            return;
        }
        if let Err(why) = self.context.decode(&mut self.batch) {
            tracing::error!(%why, tokens = self.batch.n_tokens(), "llama_decode failed");
            self.fail_all(&format!("decoding failed: {why}"));
            return;
        }
        for index in 0..self.slots.len() {
            self.sample(index);
        }
    }

    fn drop_cancelled(&mut self) {
        for index in 0..self.slots.len() {
            if self.slots[index]
                .sequence
                .as_ref()
                .is_some_and(|s| s.events.is_closed())
            {
                tracing::debug!(slot = index, "client went away; sequence dropped");
                self.release(index, false);
            }
        }
    }

    /// Decoding sequences first, one token each, so they never wait on a
    /// prompt; then prompt chunks, oldest first, within the chunk budget.
    fn fill_batch(&mut self) -> Result<(), String> {
        let mut prefilling = Vec::new();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(seq) = &mut slot.sequence else {
                continue;
            };
            seq.logits_at = None;
            if let Some(token) = seq.next {
                seq.logits_at = Some(self.batch.n_tokens());
                self.batch
                    .add(token, pos(seq.position)?, &[seq_id(index)?], true)
                    .map_err(|e| e.to_string())?;
            } else if seq.prefilled < seq.prompt.len() {
                prefilling.push((seq.admitted, index));
            }
        }
        prefilling.sort_unstable();
        let mut budget = self.config.prefill_chunk;
        for (_, index) in prefilling {
            if budget == 0 {
                break;
            }
            let Some(seq) = self.slots[index].sequence.as_mut() else {
                continue;
            };
            let end = seq.prompt.len().min(seq.prefilled + budget);
            for at in seq.prefilled..end {
                let last = at + 1 == seq.prompt.len();
                if last {
                    seq.logits_at = Some(self.batch.n_tokens());
                }
                self.batch
                    .add(seq.prompt[at], pos(at)?, &[seq_id(index)?], last)
                    .map_err(|e| e.to_string())?;
            }
            budget -= end - seq.prefilled;
            seq.prefilled = end;
            seq.position = end;
        }
        Ok(())
    }

    /// Samples the next token of slot `index` if it had logits this step,
    /// and sends what it confirms.
    fn sample(&mut self, index: usize) {
        let Some(seq) = self.slots[index].sequence.as_mut() else {
            return;
        };
        let Some(logits_at) = seq.logits_at.take() else {
            return;
        };
        if let Some(decoded) = seq.next.take() {
            seq.decoded.push(decoded);
            seq.position += 1;
        }
        let token = seq.sampler.sample(&self.context, logits_at);
        seq.completion_tokens += 1;
        if seq.completion_tokens == 1 {
            tracing::debug!(
                slot = index,
                ttft_ms = seq.started.elapsed().as_millis(),
                "first token"
            );
        }

        let vocab = self.model.vocab();
        if vocab.is_eog(token) {
            self.finish(index, FinishReason::Stop, true);
            return;
        }
        let piece = vocab.token_to_piece(token, false, None);
        let (text, stopped) = match seq.text.push(&piece) {
            Released::Text(text) => (text, false),
            Released::Stopped(text) => (text, true),
        };
        if !text.is_empty() {
            // A closed receiver is noticed at the next step's cancellation check.
            let _ = seq.events.send(GenerationEvent::Text(text));
        }
        if stopped {
            self.finish(index, FinishReason::Stop, false);
        } else if seq.completion_tokens >= seq.max_tokens {
            self.finish(index, FinishReason::Length, true);
        } else {
            seq.next = Some(token);
        }
    }

    /// Ends slot `index` with `Done`, first sending held text when `flush`.
    fn finish(&mut self, index: usize, reason: FinishReason, flush: bool) {
        let Some(seq) = self.slots[index].sequence.as_mut() else {
            return;
        };
        if flush {
            let rest = seq.text.finish();
            if !rest.is_empty() {
                let _ = seq.events.send(GenerationEvent::Text(rest));
            }
        }
        let _ = seq.events.send(seq.done(reason));
        tracing::debug!(
            slot = index,
            prompt_tokens = seq.prompt.len(),
            completion_tokens = seq.completion_tokens,
            ?reason,
            elapsed_ms = seq.started.elapsed().as_millis(),
            "sequence finished"
        );
        self.release(index, true);
    }

    /// Frees slot `index`. A sequence that ended normally leaves its tokens
    /// as cache for the next prompt; any other frees its KV cells.
    fn release(&mut self, index: usize, keep_cache: bool) {
        let Some(seq) = self.slots[index].sequence.take() else {
            return;
        };
        let slot = &mut self.slots[index];
        slot.cached.clear();
        if keep_cache {
            slot.cached.extend_from_slice(&seq.prompt[..seq.prefilled]);
            slot.cached.extend_from_slice(&seq.decoded);
        } else if !self.forget_from(index, 0) {
            // Leftover cells would be attended to by the slot's next
            // sequence; llama.cpp only refuses partial removals, so this is
            // not expected.
            tracing::warn!(slot = index, "could not clear the sequence's KV cells");
        }
        self.shared.finished_one();
    }

    fn fail_all(&mut self, why: &str) {
        for index in 0..self.slots.len() {
            if let Some(seq) = self.slots[index].sequence.as_ref() {
                let _ = seq
                    .events
                    .send(GenerationEvent::Failed(InferenceError::Engine(why.into())));
                self.release(index, false);
            }
        }
    }
}

fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn pos(position: usize) -> Result<i32, String> {
    i32::try_from(position).map_err(|_| format!("position {position} out of range"))
}

fn seq_id(index: usize) -> Result<i32, String> {
    i32::try_from(index).map_err(|_| format!("sequence id {index} out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_seeds_never_mean_random() {
        assert_ne!(seed_for(Some(u64::from(u32::MAX))), u32::MAX);
        assert_eq!(seed_for(Some(42)), seed_for(Some(42)));
        assert_ne!(seed_for(Some(1)), seed_for(Some(2)));
        for _ in 0..100 {
            assert_ne!(seed_for(None), u32::MAX);
        }
    }
}
