//! One SKU's single writer: a task owning the SKU's state, stream version and command ids.
//!
//! Each turn of the loop takes everything queued (up to `max_batch`), decides it in arrival
//! order on the in-memory state (each decision sees the ones before it), and appends the
//! accepted commands with one `append_many` whose expected versions are chained
//! (`v`, `v + n₁`, …). The store processes appends to one shard in order and group commit
//! puts them in one transaction, so a batch costs one commit, not one per command.
//!
//! Answers go out only after the append returned, in order: a refusal decided after an
//! accepted command is only sent once that command is durable, so no caller is ever told
//! "out of stock" because of a reservation that then failed to commit.
//!
//! If an append fails (a conflict: another process wrote the SKU; or the store failed), the
//! commands before it are answered, the state is reloaded from the stream and the rest are
//! decided again: bounded by `max_reloads`, after which they get `Contention`.

use std::collections::HashMap;
use std::sync::Weak;

use orderflow_domain::sku::{Sku, SkuCommand, SkuEvent, SkuState};
use orderflow_domain::{Decider, SkuId, StreamId};
use orderflow_infra::store::{
    AppendOutcome, AppendRequest, CommandId, ConsistencyToken, ExpectedVersion, Position,
    StoreError,
};
use tokio::sync::{mpsc, oneshot};
use tracing::instrument;

use super::{Inner, Shelf, StockConfig, StockResult};
use crate::error::CommandError;
use crate::execute::{decode, encode, CommandMeta, Executed, Executor};

/// Events read per page when rebuilding.
const PAGE: usize = 1_000;

pub(crate) enum Request {
    Command {
        command: SkuCommand,
        meta: CommandMeta,
        reply: oneshot::Sender<StockResult>,
    },
    State {
        reply: oneshot::Sender<Result<SkuState, CommandError>>,
    },
    /// Only the shelf: what `SubmitOrder` needs. Cloning the whole state would copy every
    /// reservation, O(units) per submit on the writer's own task in a flash sale.
    Shelf {
        reply: oneshot::Sender<Result<Option<Shelf>, CommandError>>,
    },
}

struct Pending {
    command: SkuCommand,
    meta: CommandMeta,
    reply: oneshot::Sender<StockResult>,
}

impl Pending {
    fn answer(self, result: StockResult) {
        // The caller may have given up (timeout, shutdown): nothing to tell it then.
        let _ = self.reply.send(result);
    }
}

/// The SKU as the stream has it, plus what every command id of the stream appended.
struct Ledger {
    state: SkuState,
    version: u64,
    last_position: Option<Position>,
    /// Every command id ever appended to this stream, so a repeat returns the first answer
    /// without asking the store (a complete index: it is rebuilt with the state).
    commands: HashMap<CommandId, Done>,
}

struct Done {
    events: Vec<SkuEvent>,
    last_position: Position,
}

/// What deciding one command came to, before the append.
enum Plan {
    /// A command id the stream already has.
    Repeat,
    Refused(CommandError),
    /// Accepted with nothing to append (an exact repeat of what already happened).
    Noop {
        version: u64,
    },
    /// To append: the index of its request in the batch's `append_many`.
    Append {
        request: usize,
        events: Vec<SkuEvent>,
    },
}

pub(crate) struct Writer {
    sku: SkuId,
    stream: StreamId,
    id: u64,
    executor: Executor,
    config: StockConfig,
    registry: Weak<Inner>,
    rx: mpsc::Receiver<Request>,
    /// `None` until first used, and after a failed append (the next batch reloads).
    ledger: Option<Ledger>,
}

impl Writer {
    pub(crate) fn new(
        sku: SkuId,
        id: u64,
        executor: Executor,
        config: StockConfig,
        registry: Weak<Inner>,
        rx: mpsc::Receiver<Request>,
    ) -> Self {
        Writer {
            stream: sku.stream_id(),
            sku,
            id,
            executor,
            config,
            registry,
            rx,
            ledger: None,
        }
    }

    #[instrument(skip_all, fields(sku = %self.sku, writer = self.id))]
    pub(crate) async fn run(mut self) {
        loop {
            let first = match tokio::time::timeout(self.config.idle, self.rx.recv()).await {
                Ok(Some(request)) => request,
                // Every sender is gone: the `StockWriters` was dropped.
                Ok(None) => break,
                Err(_idle) => {
                    // Deregister first, then close: a caller that still got our sender
                    // finds the queue closed and spawns a successor; whatever made it into
                    // the queue before the close is still handled here.
                    if let Some(inner) = self.registry.upgrade() {
                        inner.deregister(&self.sku, self.id);
                    }
                    self.rx.close();
                    let mut rest = Vec::new();
                    while let Ok(request) = self.rx.try_recv() {
                        rest.push(request);
                    }
                    if !rest.is_empty() {
                        self.process(rest).await;
                    }
                    tracing::debug!("idle writer dropped");
                    break;
                }
            };
            let mut batch = vec![first];
            while batch.len() < self.config.max_batch {
                match self.rx.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.process(batch).await;
        }
    }

    #[instrument(skip_all, fields(batch = batch.len()))]
    async fn process(&mut self, batch: Vec<Request>) {
        let mut todo = Vec::with_capacity(batch.len());
        let mut state_requests = Vec::new();
        let mut shelf_requests = Vec::new();
        for request in batch {
            match request {
                Request::Command {
                    command,
                    meta,
                    reply,
                } => todo.push(Pending {
                    command,
                    meta,
                    reply,
                }),
                Request::State { reply } => state_requests.push(reply),
                Request::Shelf { reply } => shelf_requests.push(reply),
            }
        }
        let mut attempts = 0;
        while !todo.is_empty() {
            if attempts > self.config.max_reloads {
                for pending in todo.drain(..) {
                    pending.answer(Err(CommandError::Contention {
                        stream: self.stream.to_string(),
                    }));
                }
                break;
            }
            attempts += 1;
            if let Err(e) = self.ensure_loaded().await {
                for pending in todo.drain(..) {
                    pending.answer(Err(copy_error(&e)));
                }
                break;
            }
            todo = self.decide_and_append(todo).await;
        }
        for reply in state_requests {
            let state = match self.ensure_loaded().await {
                Ok(()) => self
                    .ledger
                    .as_ref()
                    .map(|l| l.state.clone())
                    .ok_or(CommandError::ShuttingDown),
                Err(e) => Err(e),
            };
            let _ = reply.send(state);
        }
        for reply in shelf_requests {
            let shelf = match self.ensure_loaded().await {
                Ok(()) => self
                    .ledger
                    .as_ref()
                    .map(|l| Shelf::of(&l.state))
                    .ok_or(CommandError::ShuttingDown),
                Err(e) => Err(e),
            };
            let _ = reply.send(shelf);
        }
    }

    async fn ensure_loaded(&mut self) -> Result<(), CommandError> {
        if self.ledger.is_none() {
            let ledger = self.load().await?;
            self.publish(Some(Shelf::of(&ledger.state)));
            self.ledger = Some(ledger);
        }
        Ok(())
    }

    /// Publishes the durable shelf for [`super::StockWriters::shelf`] (`None` withdraws it
    /// while the state is in doubt).
    fn publish(&self, shelf: Option<Option<Shelf>>) {
        if let Some(inner) = self.registry.upgrade() {
            inner.publish_shelf(&self.sku, self.id, shelf);
        }
    }

    /// Rebuilds the ledger from the whole stream.
    #[instrument(skip_all)]
    async fn load(&self) -> Result<Ledger, CommandError> {
        let store = self.executor.store();
        let mut ledger = Ledger {
            state: SkuState::default(),
            version: 0,
            last_position: None,
            commands: HashMap::new(),
        };
        loop {
            let page = store
                .read_stream(&self.stream, ledger.version + 1, PAGE)
                .await?;
            let done = page.len() < PAGE;
            for recorded in &page {
                let event = decode::<Sku>(recorded)?;
                ledger.state = Sku::evolve(std::mem::take(&mut ledger.state), &event);
                let entry = ledger
                    .commands
                    .entry(recorded.metadata.command_id.clone())
                    .or_insert_with(|| Done {
                        events: Vec::new(),
                        last_position: recorded.position,
                    });
                entry.events.push(event);
                entry.last_position = recorded.position;
                ledger.version = recorded.stream_version;
                ledger.last_position = Some(recorded.position);
            }
            if done {
                break;
            }
        }
        tracing::debug!(version = ledger.version, "sku state rebuilt");
        Ok(ledger)
    }

    /// One round: decide everything, append the accepted, answer what is settled. Returns
    /// the commands to decide again (after a reload), if an append failed.
    async fn decide_and_append(&mut self, todo: Vec<Pending>) -> Vec<Pending> {
        let Some(ledger) = self.ledger.as_mut() else {
            return todo;
        };
        let mut plans = Vec::with_capacity(todo.len());
        let mut requests = Vec::new();
        let mut in_batch: HashMap<CommandId, ()> = HashMap::new();
        for pending in &todo {
            let id = &pending.meta.command_id;
            if ledger.commands.contains_key(id) || in_batch.contains_key(id) {
                plans.push(Plan::Repeat);
                continue;
            }
            match Sku::decide(&pending.command, &ledger.state) {
                Err(e) => plans.push(Plan::Refused(CommandError::refused(e))),
                Ok(events) if events.is_empty() => plans.push(Plan::Noop {
                    version: ledger.version,
                }),
                Ok(events) => {
                    let encoded = match events.iter().map(encode).collect::<Result<Vec<_>, _>>() {
                        Ok(encoded) => encoded,
                        Err(e) => {
                            plans.push(Plan::Refused(e));
                            continue;
                        }
                    };
                    requests.push(AppendRequest {
                        stream: self.stream.clone(),
                        expected: ExpectedVersion::Exact(ledger.version),
                        events: encoded,
                        metadata: pending.meta.metadata(),
                    });
                    ledger.version += events.len() as u64;
                    for event in &events {
                        ledger.state = Sku::evolve(std::mem::take(&mut ledger.state), event);
                    }
                    in_batch.insert(id.clone(), ());
                    plans.push(Plan::Append {
                        request: requests.len() - 1,
                        events,
                    });
                }
            }
        }
        let requests_len = requests.len();
        let results = if requests.is_empty() {
            Vec::new()
        } else {
            self.executor.store().append_many(requests).await
        };
        // Publish before answering anyone, so a caller told "listed" reads the listing: the
        // state is durable if every append landed; otherwise withdraw it until the reload.
        let landed = results.len() == requests_len
            && results
                .iter()
                .all(|r| matches!(r, Ok(outcome) if !outcome.deduplicated));
        let shelf = landed.then(|| Shelf::of(&ledger.state));
        if let Some(inner) = self.registry.upgrade() {
            inner.publish_shelf(&self.sku, self.id, shelf);
        }
        let mut results: Vec<Option<Result<AppendOutcome, StoreError>>> =
            results.into_iter().map(Some).collect();

        let shard = self.stream.shard();
        let mut todo = todo.into_iter();
        let mut retry = Vec::new();
        let mut failed = false;
        for (pending, plan) in todo.by_ref().zip(plans) {
            match plan {
                Plan::Repeat => match ledger.commands.get(&pending.meta.command_id) {
                    Some(done) => {
                        let answer = Executed {
                            events: done.events.clone(),
                            token: Some(ConsistencyToken::new(shard, done.last_position)),
                            deduplicated: true,
                            version: ledger.version,
                        };
                        pending.answer(Ok(answer));
                    }
                    // Its twin earlier in this batch did not land: decide it again.
                    None => retry.push(pending),
                },
                Plan::Refused(e) => pending.answer(Err(e)),
                Plan::Noop { version } => {
                    let token = ledger
                        .last_position
                        .map(|p| ConsistencyToken::new(shard, p));
                    pending.answer(Ok(Executed {
                        events: Vec::new(),
                        token,
                        deduplicated: false,
                        version,
                    }));
                }
                Plan::Append { request, events } => {
                    let result = results.get_mut(request).and_then(Option::take);
                    match result {
                        Some(Ok(outcome)) if !outcome.deduplicated => {
                            ledger.last_position = Some(outcome.last_position);
                            ledger.commands.insert(
                                pending.meta.command_id.clone(),
                                Done {
                                    events: events.clone(),
                                    last_position: outcome.last_position,
                                },
                            );
                            pending.answer(Ok(Executed {
                                events,
                                token: Some(ConsistencyToken::new(
                                    outcome.shard,
                                    outcome.last_position,
                                )),
                                deduplicated: false,
                                version: outcome.last_version,
                            }));
                        }
                        // Someone else wrote this SKU (a conflict, or this command id
                        // through another process): everything from here was decided on a
                        // stale state.
                        Some(Ok(_)) | Some(Err(StoreError::Conflict { .. })) => {
                            tracing::debug!("append conflict; reloading the sku");
                            retry.push(pending);
                            failed = true;
                            break;
                        }
                        Some(Err(e)) => {
                            // This append failed on its own account (or the store is down):
                            // its caller hears it and may retry with the same command id;
                            // the rest are decided again on a reloaded state.
                            tracing::warn!(error = %e, "sku append failed");
                            pending.answer(Err(e.into()));
                            failed = true;
                            break;
                        }
                        None => {
                            pending.answer(Err(CommandError::ShuttingDown));
                            failed = true;
                            break;
                        }
                    }
                }
            }
        }
        retry.extend(todo);
        if failed || !retry.is_empty() {
            // The in-memory state includes decisions that did not land.
            self.ledger = None;
        }
        retry
    }
}

/// A failure to report to several callers (the error types are not `Clone`).
fn copy_error(e: &CommandError) -> CommandError {
    match e {
        CommandError::Store(StoreError::ShuttingDown) | CommandError::ShuttingDown => {
            CommandError::ShuttingDown
        }
        CommandError::Corrupt(msg) => CommandError::Corrupt(msg.clone()),
        other => CommandError::Store(StoreError::Unavailable(other.to_string())),
    }
}
