//! The names a saga binds, checked as the parser reads them.
//!
//! A saga keeps every value until it ends, so its names form one flat scope: a
//! name is bound once, and a local may not borrow what the saga itself holds.
//! Both rules read only what comes before the binding, so they are checked as
//! each binding is read, and their errors come in the order of the code, among
//! the parser's own.

use std::collections::{HashMap, HashSet};

use syn::{Expr, Ident};

use super::analyse::names_used;
use super::ast::Local;
use super::signature::first_borrow;
use crate::ctxt::Ctxt;

pub(super) struct Scope {
    /// The name given to the lifetimes the user left out, unlike any they wrote.
    pub(super) elided: syn::Lifetime,
    /// Every name bound so far.
    names: HashSet<String>,
    /// The names of values the saga holds itself (owned inputs, outputs and
    /// locals), as opposed to resources.
    held: HashSet<String>,
    /// The resources (`&T` parameters) and their referents, `T`, which name the
    /// steps of the methods called on them.
    resources: HashMap<String, syn::Type>,
    /// The saga's type parameters.
    type_params: HashSet<String>,
    /// The saga function's name.
    pub(super) fn_ident: Ident,
}

impl Scope {
    pub(super) fn new(func: &syn::ItemFn) -> Self {
        Scope {
            elided: super::signature::elided_lifetime(func),
            names: HashSet::new(),
            held: HashSet::new(),
            resources: HashMap::new(),
            fn_ident: func.sig.ident.clone(),
            type_params: func
                .sig
                .generics
                .type_params()
                .map(|t| t.ident.to_string())
                .collect(),
        }
    }

    /// Binds a name the user wrote: it may not be reserved or bound already.
    pub(super) fn bind(&mut self, cx: &Ctxt, ident: &Ident) {
        let name = ident.to_string();
        if name.starts_with("__sagaflow") {
            cx.error_spanned_by(
                ident,
                "names starting with `__sagaflow` are reserved for generated code",
            );
        } else if !self.names.insert(name.clone()) {
            cx.error_spanned_by(
                ident,
                format!(
                    "`{name}` is already bound in this saga; a saga keeps its values until it ends (compensations read them), so names cannot be shadowed: use another name"
                ),
            );
        }
    }

    /// Every name bound so far.
    pub(super) fn names(&self) -> &HashSet<String> {
        &self.names
    }

    /// Records that `ident` is a resource whose referent type is `ty`.
    pub(super) fn resource(&mut self, ident: &Ident, ty: &syn::Type) {
        self.resources.insert(ident.to_string(), ty.clone());
    }

    /// Whether `name` is a resource (a `&T` parameter).
    pub(super) fn is_resource(&self, name: &str) -> bool {
        self.resources.contains_key(name)
    }

    /// The referent type of the resource named `ident`, if it is one.
    pub(super) fn resource_type(&self, ident: &Ident) -> Option<&syn::Type> {
        self.resources.get(&ident.to_string())
    }

    /// Whether `ty` is one of the saga's type parameters.
    pub(super) fn is_type_param(&self, ty: &syn::Type) -> bool {
        matches!(ty, syn::Type::Path(p) if p.qself.is_none() && p.path.get_ident().is_some_and(|i| self.type_params.contains(&i.to_string())))
    }

    /// Records that the saga holds the value named `ident`.
    pub(super) fn hold(&mut self, ident: &Ident) {
        self.held.insert(ident.to_string());
    }

    /// Whether `local` may be held: a local whose type borrows may borrow a
    /// resource (a `&T` input), but not anything the saga holds itself, which
    /// would make the saga self-referential.
    pub(super) fn check_local_borrow(&self, cx: &Ctxt, local: &Local) -> bool {
        let Some(borrow) = first_borrow(&local.ty) else {
            return true;
        };
        // Only the plain forms (`&trip.code`, `trip.code.as_str()`): a
        // `&'static` value computed from held names is fine.
        let borrowed_part = match &local.expr {
            Expr::Reference(r) => Some(&*r.expr),
            Expr::MethodCall(m)
                if ["as_str", "as_ref", "as_slice", "as_bytes", "as_deref"]
                    .iter()
                    .any(|name| m.method == name) =>
            {
                Some(&*m.receiver)
            }
            _ => None,
        };
        if let Some(from) =
            borrowed_part.and_then(|part| names_used(part, &self.held).into_iter().min())
        {
            cx.error_spanned_by(
                borrow,
                format!(
                    "a saga local cannot borrow from `{from}`, which the saga itself holds (the saga would borrow from itself); pass the borrow to the step directly, as in `step(&{from}.field)`, or make the local own its value (`String` for `&str`, or `.clone()`)"
                ),
            );
            return false;
        }
        true
    }
}
