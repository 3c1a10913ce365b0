//! Requests from the local API (and the orphan guard) to the driver. The API never talks to Finesse: it queues a
//! [`Request`] and waits for the answer. The driver takes requests only while steady, so
//! one that arrives during recovery waits; if its deadline passes (or its caller gave up)
//! before the driver reaches it, it is dropped unsent. Either way an action is sent to
//! Finesse at most once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::config::DesiredState;
use crate::vocab::DialogAction;

/// What the API asks for.
#[derive(Debug)]
pub enum Command {
    /// `PUT /finesse/api/Dialog/{id}` with `requestedAction`.
    DialogAction {
        /// Dialog id.
        id: String,
        /// What to do.
        action: DialogAction,
        /// The TRANSFER target.
        target: Option<String>,
    },
    /// Set READY or NOT_READY (with a reason); it also becomes the desired state.
    SetState {
        /// MRD id.
        mrd: u32,
        /// READY | NOT_READY.
        state: DesiredState,
        /// With NOT_READY.
        reason: Option<u32>,
    },
    /// Routable or not.
    SetRoutable {
        /// MRD id.
        mrd: u32,
        /// The flag.
        routable: bool,
    },
}

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Unknown dialog or MRD.
    #[error("{0}")]
    NotFound(String),
    /// Not allowed in the current state.
    #[error("{0}")]
    NotAllowed(String),
    /// Finesse refused it.
    #[error("Finesse answered: {0}")]
    Finesse(String),
    /// Finesse could not be reached; nothing was sent.
    #[error("Finesse unavailable: {0}")]
    Unavailable(String),
    /// Finesse rejected the password: nothing carrying it is sent until the hold has passed.
    #[error("credentials rejected")]
    AuthFailed,
    /// The request went out and no answer came back: Finesse may or may not have acted on
    /// it. It is never sent again.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
}

/// Who has a queued request: still queued, taken by the driver (it may be sent), or
/// abandoned by its caller (it is never sent). Exactly one of the two claims wins.
const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const ABANDONED: u8 = 2;

/// A queued command.
#[derive(Debug)]
pub struct Request {
    /// What to do.
    pub command: Command,
    /// Not sent after this.
    pub deadline: Instant,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Result<(), CommandError>>,
    claim: Arc<AtomicU8>,
}

/// The driver's answer to a queued [`Request`].
pub type Answer = oneshot::Receiver<Result<(), CommandError>>;

/// The caller's side of a queued request.
#[derive(Debug)]
pub struct Ticket {
    /// Where the answer comes.
    pub answer: Answer,
    claim: Arc<AtomicU8>,
}

impl Ticket {
    /// Gives the request up unless the driver took it first: true when it will never be
    /// sent, false when the driver has it (its answer still comes).
    pub fn abandon(&self) -> bool {
        self.claim
            .compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

impl Request {
    /// Queues `command` (not sent after `deadline`) and returns the caller's ticket; `None`
    /// when the driver is gone (the daemon is stopping).
    pub async fn queue(
        to: &tokio::sync::mpsc::Sender<Request>,
        command: Command,
        deadline: Instant,
    ) -> Option<Ticket> {
        let (reply, answer) = oneshot::channel();
        let claim = Arc::new(AtomicU8::new(QUEUED));
        let request = Request {
            command,
            deadline,
            reply,
            claim: claim.clone(),
        };
        to.send(request)
            .await
            .ok()
            .map(|()| Ticket { answer, claim })
    }

    /// Takes the request for sending unless its caller gave it up first.
    pub fn take(&self) -> bool {
        self.claim
            .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}
