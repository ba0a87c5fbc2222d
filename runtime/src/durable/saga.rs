//! The trait `#[saga]` implements for durable execution.

use core::future::Future;

use super::journal::{Journal, Resources};
use crate::hooks::Hooks;
use crate::run::Run;
use crate::{Saga, SagaError};

/// A saga that can run under journal `J`: every `#[saga]` implements it for every
/// journal that can keep its data.
///
/// For the durable executor that means the saga's owned inputs, each step's output
/// and its own output are `Serialize + DeserializeOwned`, and the referents of its
/// `&T` parameters (its resources) are `'static + Send + Sync`. A saga run in
/// memory needs none of that; the bounds are checked only where a saga is handed
/// to a durable executor, and the error names the type that falls short.
///
/// A durable saga is `Send`, and so is the future that drives it, so that the
/// executor's recovery and its handles can be spawned on a multi-threaded
/// runtime. Its resources are `Sync` and its data is persisted, so this asks
/// only that its locals and its steps' futures be `Send` too.
pub trait DurableSaga<J: Journal>: Saga + Send {
    /// The same saga borrowing its resources for `'a`: what recovery rebuilds.
    type With<'a>: DurableSaga<J, Output = Self::Output, Error = Self::Error>;

    /// The owned inputs, serialized. Not public API.
    #[doc(hidden)]
    fn __sagaflow_encode_input(&self) -> Result<Vec<u8>, String>;

    /// The saga rebuilt from its stored input and the executor's resources.
    /// Not public API.
    #[doc(hidden)]
    fn __sagaflow_rebuild<'a>(
        resources: &'a Resources,
        input: &[u8],
    ) -> Result<Self::With<'a>, String>;

    /// Drives the state machine under journal `J`. Not public API.
    #[doc(hidden)]
    fn __sagaflow_drive_with<H: Hooks + Sync>(
        self,
        run: &mut Run<'_, H, J>,
    ) -> impl Future<Output = Result<Self::Output, SagaError<Self::Error>>> + Send;
}
