//! Parse and expand, generic sagas: `checkout<P: Payments>(payments: &Payer<P>, order: Order)`.
//!
//! ```text
//! #[saga] async fn checkout<P: Payments>(payments: &Payer<P>, order: Order) -> Result<T, E>
//! ```
//! becomes a generic type, whose every impl carries the saga's parameters and
//! bounds, and whose durable impl also asks `P: 'static` (a durable executor
//! registers a concrete instance, `CheckoutSaga<Stripe>`, by its type):
//! ```text
//! struct CheckoutSaga<'r, P: Payments> { payments: &'r Payer<P>, order: Order, marker }
//! impl<'r, P: Payments> Saga for CheckoutSaga<'r, P> { .. }
//! impl<'r, P: Payments, J> DurableSaga<J> for CheckoutSaga<'r, P> where P: 'static, .. { .. }
//! ```
//! An owned input is data, persisted and read back on recovery: its type may
//! use a type parameter only if the parameter's bounds say it can be read back.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::{FnArg, Pat, Type};

use crate::ctxt::Ctxt;

/// Reports each owned input whose type uses a type parameter that is not
/// bounded by `DeserializeOwned` (or `Deserialize<'de>`); whether there was none.
pub(super) fn check_owned_inputs(cx: &Ctxt, sig: &syn::Signature) -> bool {
    let mut ok = true;
    for input in &sig.inputs {
        let FnArg::Typed(pt) = input else { continue };
        if matches!(&*pt.ty, Type::Reference(_)) {
            continue;
        }
        let name = match &*pt.pat {
            Pat::Ident(pi) => pi.ident.to_string(),
            other => other.to_token_stream().to_string(),
        };
        for param in sig.generics.type_params() {
            if mentions(&pt.ty, &param.ident) && !readable(sig, &param.ident) {
                let t = &param.ident;
                cx.error_spanned_by(
                    &pt.ty,
                    format!(
                        "`{name}` is an owned saga input of the generic type `{t}`: a durable saga persists it and reads it back on recovery, so `{t}` must say it can be: bound it `{t}: serde::de::DeserializeOwned` (and `serde::Serialize`), or take it as a resource, `{name}: &{t}`"
                    ),
                );
                ok = false;
            }
        }
    }
    ok
}

/// Whether `ty` names the type parameter `param` anywhere.
fn mentions(ty: &Type, param: &syn::Ident) -> bool {
    fn walk(tokens: TokenStream, param: &syn::Ident) -> bool {
        tokens.into_iter().any(|tt| match tt {
            proc_macro2::TokenTree::Ident(i) => &i == param,
            proc_macro2::TokenTree::Group(g) => walk(g.stream(), param),
            _ => false,
        })
    }
    walk(ty.to_token_stream(), param)
}

/// Whether `param`'s bounds, inline or in the where clause, include
/// `DeserializeOwned` or `Deserialize`.
fn readable(sig: &syn::Signature, param: &syn::Ident) -> bool {
    let is_deserialize = |bound: &syn::TypeParamBound| match bound {
        syn::TypeParamBound::Trait(t) => t
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "DeserializeOwned" || s.ident == "Deserialize"),
        _ => false,
    };
    let inline = sig
        .generics
        .type_params()
        .filter(|t| &t.ident == param)
        .any(|t| t.bounds.iter().any(is_deserialize));
    let in_where = sig.generics.where_clause.iter().any(|w| {
        w.predicates.iter().any(|p| match p {
            syn::WherePredicate::Type(pt) => {
                matches!(&pt.bounded_ty, Type::Path(tp) if tp.path.is_ident(param))
                    && pt.bounds.iter().any(is_deserialize)
            }
            _ => false,
        })
    });
    inline || in_where
}

/// The generics of the saga's generated items.
pub(super) struct Generics {
    /// `<'r, 'a, P: Payments>`, for `impl` and type declarations.
    pub(super) params: TokenStream,
    /// `<'r, 'a, P>`, the type's arguments.
    pub(super) args: TokenStream,
    /// `<'_, '_, P>`, the state enum's type where lifetimes are inferred.
    pub(super) inferred: TokenStream,
    /// The user's where-clause predicates, each followed by a comma.
    pub(super) predicates: TokenStream,
    /// `P: 'static` for each type parameter, each followed by a comma.
    pub(super) static_bounds: TokenStream,
    /// The type parameters' names.
    pub(super) type_names: Vec<syn::Ident>,
}

pub(super) fn generics(
    lifetimes: &[syn::Lifetime],
    type_params: &[syn::TypeParam],
    where_clause: Option<&syn::WhereClause>,
) -> Generics {
    let type_names: Vec<syn::Ident> = type_params.iter().map(|t| t.ident.clone()).collect();
    // Without defaults: a default belongs on the declaration only, and the
    // `impl`s repeat these parameters.
    let declared: Vec<syn::TypeParam> = type_params
        .iter()
        .cloned()
        .map(|mut t| {
            t.eq_token = None;
            t.default = None;
            t
        })
        .collect();
    let wrap = |inner: TokenStream| {
        if inner.is_empty() {
            quote!()
        } else {
            quote!(<#inner>)
        }
    };
    let elided = lifetimes.iter().map(|_| quote!('_));
    let predicates = where_clause
        .map(|w| {
            let p = w.predicates.iter();
            quote!(#(#p,)*)
        })
        .unwrap_or_default();
    Generics {
        params: wrap(quote!(#(#lifetimes,)* #(#declared,)*)),
        args: wrap(quote!(#(#lifetimes,)* #(#type_names,)*)),
        inferred: wrap(quote!(#(#elided,)* #(#type_names,)*)),
        predicates,
        static_bounds: quote!(#(#type_names: 'static,)*),
        type_names,
    }
}

/// The const checks of a generic saga (pivot order, a saga awaited as a step),
/// which name the saga's type parameters: an unnamed free `const _` cannot, so
/// each becomes an associated const of the saga's type, which `new` reads, and
/// which rustc evaluates for each concrete instance.
pub(super) fn checks_in_impl(checks: TokenStream) -> (TokenStream, TokenStream) {
    let mut out = Vec::new();
    let mut names = Vec::new();
    let mut after_const = false;
    for tt in checks {
        let tt = match tt {
            proc_macro2::TokenTree::Ident(i) if after_const && i == "_" => {
                let name =
                    quote::format_ident!("__SAGAFLOW_CHECK_{}", names.len(), span = i.span());
                names.push(name.clone());
                proc_macro2::TokenTree::Ident(name)
            }
            other => other,
        };
        after_const = matches!(&tt, proc_macro2::TokenTree::Ident(i) if i == "const");
        out.push(tt);
    }
    let consts: TokenStream = out.into_iter().collect();
    let reads = quote!(#(let () = Self::#names;)*);
    (consts, reads)
}
