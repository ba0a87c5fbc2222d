//! Parse, signature: the saga's `fn` line read into its parameters and types.
//!
//! ```text
//! async fn book_trip<'a>(airline: &Airline, trip: Trip) -> Result<Itinerary, TripError>
//! ```
//! becomes
//! ```text
//! Signature { lifetimes: ['a], params: [airline: &'__sagaflow_r Airline, trip: Trip],
//!             output_ty: Itinerary, error_ty: TripError, needs_elided: true }
//! ```

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{FnArg, GenericParam, Pat, ReturnType, Type};

use super::ast::Param;
use super::scope::Scope;
use crate::ctxt::Ctxt;

/// What the saga's signature says, checked.
pub(super) struct Signature {
    pub(super) lifetimes: Vec<syn::Lifetime>,
    pub(super) type_params: Vec<syn::TypeParam>,
    pub(super) params: Vec<Param>,
    pub(super) output_ty: Type,
    pub(super) error_ty: Type,
    pub(super) needs_elided: bool,
    /// False if a mistake was reported (the signature is still read whole).
    pub(super) ok: bool,
}

/// Reads `sig`, reporting every mistake; `None` if its return type cannot be read,
/// since nothing else can be generated without it.
pub(super) fn read(cx: &Ctxt, sig: &syn::Signature, scope: &mut Scope) -> Option<Signature> {
    let mut ok = true;
    if sig.asyncness.is_none() {
        cx.error_spanned_by(
            sig.fn_token,
            format!(
                "a saga must be an `async fn`: write `async fn {}`",
                sig.ident
            ),
        );
        ok = false;
    }
    let mut lifetimes = Vec::new();
    let mut type_params = Vec::new();
    for param in &sig.generics.params {
        match param {
            GenericParam::Lifetime(l) => lifetimes.push(l.lifetime.clone()),
            GenericParam::Type(t) => type_params.push(t.clone()),
            GenericParam::Const(_) => {
                cx.error_spanned_by(
                    param,
                    "a saga cannot take a const parameter (type parameters it can): pass the value as an input, or a resource, instead",
                );
                ok = false;
            }
        }
    }
    let (output_ty, error_ty) = return_types(cx, sig)?;
    let mut params = Vec::new();
    let mut needs_elided = false;
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                cx.error_spanned_by(r, "a saga must be a free `async fn`, not a method");
                ok = false;
            }
            FnArg::Typed(pt) => {
                if let Some(param) = read_param(cx, pt, &mut ok, scope) {
                    needs_elided |= param.1;
                    params.push(param.0);
                }
            }
        }
    }
    ok &= super::generic::check_owned_inputs(cx, sig);
    Some(Signature {
        lifetimes,
        type_params,
        params,
        output_ty,
        error_ty,
        needs_elided,
        ok,
    })
}

/// `Result<T, E>` read as `(T, E)`.
fn return_types(cx: &Ctxt, sig: &syn::Signature) -> Option<(Type, Type)> {
    match &sig.output {
        ReturnType::Type(_, ty) => match result_args(ty) {
            Some((_, Type::Path(e)))
                if e.path
                    .segments
                    .last()
                    .is_some_and(|s| s.ident == "SagaError") =>
            {
                cx.error_spanned_by(
                    e,
                    "write the saga's own error type here, as in `Result<Itinerary, TripError>`: the generated function returns `Result<Itinerary, SagaError<TripError>>` itself",
                );
                None
            }
            Some(pair) => Some(pair),
            None => {
                cx.error_spanned_by(
                    ty,
                    "a saga returns `Result<T, E>` with both types written out; the generated function returns `Result<T, sagaflow::SagaError<E>>`",
                );
                None
            }
        },
        ReturnType::Default => {
            cx.error_spanned_by(
                &sig.ident,
                format!(
                    "a saga returns `Result<T, E>`: add `-> Result<T, E>` to `{}`",
                    sig.ident
                ),
            );
            None
        }
    }
}

/// One `name: Type` parameter, and whether its type left a lifetime out; `None`
/// if it cannot be a field of the saga's type.
fn read_param(
    cx: &Ctxt,
    pt: &syn::PatType,
    ok: &mut bool,
    scope: &mut Scope,
) -> Option<(Param, bool)> {
    let ident = match &*pt.pat {
        Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {
            if let Some(m) = pi.mutability {
                cx.error_spanned_by(
                    m,
                    "saga inputs are immutable (steps see them again on retry and compensation): remove `mut`",
                );
                *ok = false;
            }
            pi.ident.clone()
        }
        other => {
            cx.error_spanned_by(
                other,
                "a saga's parameters must be plain names, such as `trip: Trip`; destructure in the steps instead",
            );
            *ok = false;
            return None;
        }
    };
    if let Type::Reference(r) = &*pt.ty
        && let Some(m) = r.mutability
    {
        cx.error_spanned_by(
                quote!(#m),
                "a saga cannot take `&mut`: a reference parameter is a resource (a client, a pool) that every step and compensation shares; take `&T` and use interior mutability inside it",
            );
        *ok = false;
    }
    if let Some(imp) = first_impl_trait(&pt.ty) {
        cx.error_spanned_by(
            imp,
            format!(
                "a saga parameter cannot be `impl Trait`: the generated saga type stores `{ident}`, so it needs a concrete type; take a concrete type, or a `&dyn Trait` resource"
            ),
        );
        *ok = false;
        return None;
    }
    if !matches!(&*pt.ty, Type::Reference(_))
        && let Some(borrow) = first_borrow(&pt.ty)
    {
        cx.error_spanned_by(
            borrow,
            format!(
                "`{ident}` is an owned saga input, which is data: a durable saga persists it and rebuilds it on recovery, so its type cannot borrow; make it own what it holds (`String` for `&str`, `Arc<T>` for `&T`), or take a shared resource as a plain `&T` parameter"
            ),
        );
        *ok = false;
    }
    scope.bind(cx, &ident);
    match &*pt.ty {
        Type::Reference(r) => scope.resource(&ident, &r.elem),
        _ => scope.hold(&ident),
    }
    let mut state_ty = (*pt.ty).clone();
    let found = name_elided(&mut state_ty, &scope.elided);
    let param = Param {
        name: ident,
        ty: (*pt.ty).clone(),
        state_ty,
    };
    Some((param, found))
}

/// The lifetime that the generated types give to every lifetime the user left
/// out: `'r` (for resources), or a longer name if the function already uses it.
/// It shows on the generated type's rustdoc page, so it is short and plain.
pub(super) fn elided_lifetime(func: &syn::ItemFn) -> syn::Lifetime {
    let mut used = std::collections::HashSet::new();
    collect_lifetimes(func.to_token_stream(), &mut used);
    let name = ["r", "res", "resources", "saga"]
        .into_iter()
        .map(str::to_owned)
        .find(|name| !used.contains(name))
        .unwrap_or_else(|| "__sagaflow_r".to_owned());
    syn::Lifetime::new(&format!("'{name}"), Span::call_site())
}

/// The names of every lifetime in `tokens` (`'a` is a `'` joint with `a`).
fn collect_lifetimes(tokens: TokenStream, out: &mut std::collections::HashSet<String>) {
    let mut quote_before = false;
    for tt in tokens {
        match &tt {
            proc_macro2::TokenTree::Group(g) => collect_lifetimes(g.stream(), out),
            proc_macro2::TokenTree::Ident(i) if quote_before => {
                out.insert(i.to_string());
            }
            _ => {}
        }
        quote_before = matches!(&tt, proc_macro2::TokenTree::Punct(p) if p.as_char() == '\'');
    }
}

/// Names the lifetimes that the user left out in `ty` as `elided`, so that the
/// type can live in a struct: `&Airline` becomes `&'r Airline`. Whether it found one.
pub(super) fn name_elided(ty: &mut Type, elided: &syn::Lifetime) -> bool {
    struct NameElided<'l> {
        found: bool,
        elided: &'l syn::Lifetime,
    }
    impl VisitMut for NameElided<'_> {
        fn visit_type_reference_mut(&mut self, r: &mut syn::TypeReference) {
            if r.lifetime.is_none() {
                r.lifetime = Some(self.elided.clone());
                self.found = true;
            }
            syn::visit_mut::visit_type_reference_mut(self, r);
        }

        fn visit_lifetime_mut(&mut self, l: &mut syn::Lifetime) {
            if l.ident == "_" {
                *l = self.elided.clone();
                self.found = true;
            }
        }

        fn visit_type_impl_trait_mut(&mut self, _: &mut syn::TypeImplTrait) {}
    }
    let mut namer = NameElided {
        found: false,
        elided,
    };
    namer.visit_type_mut(ty);
    namer.found
}

/// The first `impl Trait` inside a type.
pub(crate) fn first_impl_trait(ty: &Type) -> Option<&syn::TypeImplTrait> {
    struct Finder<'a>(Option<&'a syn::TypeImplTrait>);
    impl<'ast> Visit<'ast> for Finder<'ast> {
        fn visit_type_impl_trait(&mut self, t: &'ast syn::TypeImplTrait) {
            self.0.get_or_insert(t);
        }
    }
    let mut finder = Finder(None);
    finder.visit_type(ty);
    finder.0
}

/// The first borrow inside a type: a reference or a lifetime other than `'static`.
/// It decides both whether an owned saga input borrows and whether a step's
/// output does.
pub(crate) fn first_borrow(ty: &Type) -> Option<TokenStream> {
    struct Finder(Option<TokenStream>);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
            if self.0.is_none() {
                match &r.lifetime {
                    Some(l) if l.ident == "static" => {}
                    Some(l) => self.0 = Some(l.to_token_stream()),
                    None => self.0 = Some(r.and_token.to_token_stream()),
                }
            }
            syn::visit::visit_type_reference(self, r);
        }
        fn visit_lifetime(&mut self, l: &'ast syn::Lifetime) {
            if self.0.is_none() && l.ident != "static" {
                self.0 = Some(l.to_token_stream());
            }
        }
        // An `impl Trait` parameter is reported on its own.
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {}
    }
    let mut finder = Finder(None);
    finder.visit_type(ty);
    finder.0
}

/// `Result<T, E>` (by its last segment's name) read as `(T, E)`.
pub(crate) fn result_args(ty: &Type) -> Option<(Type, Type)> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    });
    let (t, e) = (types.next()?, types.next()?);
    types.next().is_none().then_some((t, e))
}

/// `book_trip` as `BookTrip`, for the generated type's name.
pub(super) fn upper_camel(name: &str) -> String {
    let name = name.strip_prefix("r#").unwrap_or(name);
    let mut out = String::new();
    for part in name.split('_').filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}
