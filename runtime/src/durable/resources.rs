//! The resources an executor hands to its durable sagas (clients, pools: the
//! referents of a saga's `&T` parameters), kept apart from the journal because
//! they are never persisted.

use core::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

/// Resources handed to durable sagas: one value per type, shared.
///
/// A saga's `&T` parameters are resources (clients, pools). They are not
/// persisted: the executor holds them and hands them to the saga when it starts
/// and again when it is recovered after a restart.
#[derive(Default, Clone)]
pub struct Resources {
    by_type: HashMap<core::any::TypeId, Arc<dyn Any + Send + Sync>>,
}

impl core::fmt::Debug for Resources {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Resources")
            .field("count", &self.by_type.len())
            .finish()
    }
}

impl Resources {
    /// No resources.
    pub fn new() -> Self {
        Resources::default()
    }

    /// Adds (or replaces) the resource of type `T`.
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) {
        self.by_type
            .insert(core::any::TypeId::of::<T>(), Arc::new(value));
    }

    /// The resource of type `T`.
    pub fn get<T: Any + Send + Sync>(&self) -> Result<&T, MissingResource> {
        self.by_type
            .get(&core::any::TypeId::of::<T>())
            .and_then(|r| r.downcast_ref::<T>())
            .ok_or_else(MissingResource::of::<T>)
    }
}

/// A durable saga needs a resource that was not registered on the executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingResource {
    type_name: &'static str,
}

impl MissingResource {
    pub(crate) fn of<T: ?Sized>() -> Self {
        MissingResource {
            type_name: core::any::type_name::<T>(),
        }
    }

    /// The missing resource's type.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }
}

impl core::fmt::Display for MissingResource {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "no resource of type `{}` is registered on the executor; add it with `Executor::resource`",
            self.type_name
        )
    }
}

impl std::error::Error for MissingResource {}
