//! Parse and expand, step methods: `bank.debit(..)` on a resource `bank: &Bank`.
//!
//! ```text
//! let debit = bank.debit(&order.account, order.total).await?;
//! ```
//! is read as the step call
//! ```text
//! path: MethodStep<Bank, {fnv1a("debit")}>      // the step type, through `StepMethod`
//! call: <Bank>::debit(bank, &order.account, order.total)
//! ```
//! so that the receiver is one more argument (the layout keeps it for the
//! compensation, and `reuse` reads it again), and its compensation is
//! ```text
//! <Bank as StepMethod<H>>::__sagaflow_compensate(reuse(&bank), (&order.account, reuse(&order.total)), &debit)
//! ```
//! `#[saga]` cannot see the `impl` block, so it names the step by the receiver's
//! type and the method's name; a method that is not a step fails the
//! `StepMethod` bound, whose message says how to make it one.

use std::collections::HashSet;

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, ExprMethodCall};

use super::ast::{MethodCall, StepCall};
use super::body::no_borrowed_temporary;
use super::check::reusable_args;
use super::scope::Scope;
use crate::ctxt::Ctxt;
use crate::steps_impl::{method_hash, type_name};

/// `recv.method(args)` read as a step call: the step type's path, the call in
/// function form, and the method's part; `None` if it cannot be one (reported).
pub(super) fn step_call(
    cx: &Ctxt,
    m: &ExprMethodCall,
    scope: &Scope,
) -> Option<(syn::Path, syn::ExprCall, MethodCall)> {
    let method = &m.method;
    let receiver = match &*m.receiver {
        Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => p.path.get_ident(),
        _ => None,
    };
    let Some(receiver) = receiver else {
        cx.error_spanned_by(
            &m.receiver,
            format!(
                "a step method is called on a resource parameter of the saga by its name, as in `bank.{method}(..)` with `bank: &Bank`: `{method}` is called on an expression here"
            ),
        );
        return None;
    };
    let Some(receiver_ty) = scope.resource_type(receiver) else {
        cx.error_spanned_by(
            receiver,
            format!(
                "`{method}` is called on `{receiver}`, which is not a resource parameter of the saga: a step method is called on a `&T` parameter (such as `bank: &Bank`) whose `impl` is marked `#[sagaflow::steps]`; a saga awaits only steps"
            ),
        );
        return None;
    };
    if scope.is_type_param(receiver_ty) {
        cx.error_spanned_by(
            method,
            format!(
                "`{method}` is called on `{receiver}`, whose type is the saga's type parameter: `#[saga]` names a step method by its receiver's type, which a bare parameter does not have; wrap the trait in a struct whose `#[sagaflow::steps] impl<P: Trait> Client<P>` declares the steps (and take `{receiver}: &Client<P>`), or call a free `#[step]` that takes `&dyn Trait`"
            ),
        );
        return None;
    }
    if let Some(turbofish) = &m.turbofish {
        cx.error_spanned_by(
            turbofish,
            "steps are not generic: call the step method without `::<..>`",
        );
        return None;
    }
    if !no_borrowed_temporary(cx, &m.args) {
        return None;
    }
    let hash = method_hash(&method.to_string());
    let span = method.span();
    // Every token at the method's name: rustc reports a missing `StepMethod`
    // there, and a path whose tokens come from two places has no span to join.
    let receiver_ty = &respan(receiver_ty, span);
    let mut hash_lit = proc_macro2::Literal::u64_suffixed(hash);
    hash_lit.set_span(span);
    let path: syn::Path = syn::parse_quote_spanned!(span=> ::sagaflow::__private::MethodStep<#receiver_ty, #hash_lit>);
    let func: Expr = syn::parse_quote_spanned!(span=> <#receiver_ty>::#method);
    let mut args = m.args.clone();
    args.insert(0, syn::parse_quote!(#receiver));
    let call = syn::ExprCall {
        attrs: Vec::new(),
        func: Box::new(func),
        paren_token: m.paren_token,
        args,
    };
    let name = format!(
        "{}::{}",
        type_name(receiver_ty),
        method.to_string().trim_start_matches("r#")
    );
    let method = MethodCall {
        name,
        receiver_ty: receiver_ty.clone(),
        hash,
    };
    Some((path, call, method))
}

/// The compensation call of step method `step` (see the module's comment).
pub(super) fn compensate_call(
    step: &StepCall,
    method: &MethodCall,
    known: &HashSet<String>,
) -> TokenStream {
    let receiver_ty = &method.receiver_ty;
    let hash = method.hash;
    let mut args = step.call.args.iter().cloned();
    let receiver: syn::punctuated::Punctuated<Expr, syn::Token![,]> =
        args.next().into_iter().collect();
    let rest: syn::punctuated::Punctuated<Expr, syn::Token![,]> = args.collect();
    let receiver = reusable_args(&receiver, known);
    let rest = reusable_args(&rest, known);
    let output = &step.binding;
    let span = step.call.span();
    let tuple = if rest.is_empty() {
        quote!(())
    } else {
        quote!((#rest,))
    };
    quote_spanned! {span=>
        || <#receiver_ty as ::sagaflow::__private::StepMethod<#hash>>::__sagaflow_compensate(#receiver, #tuple, &#output)
    }
}

/// `ty` with every token at `span`.
fn respan(ty: &syn::Type, span: proc_macro2::Span) -> syn::Type {
    fn walk(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
        tokens
            .into_iter()
            .map(|mut tt| {
                if let proc_macro2::TokenTree::Group(g) = &tt {
                    let mut group = proc_macro2::Group::new(g.delimiter(), walk(g.stream(), span));
                    group.set_span(span);
                    tt = proc_macro2::TokenTree::Group(group);
                } else {
                    tt.set_span(span);
                }
                tt
            })
            .collect()
    }
    syn::parse2(walk(quote!(#ty), span)).unwrap_or_else(|_| ty.clone())
}

// A method that is not a step:
//     airline.confirm(&trip).await?;
// also becomes, first, a check that names it
//     trait __sagaflow_confirm_is_a_step {}           // its message names `confirm`
//     #[diagnostic::do_not_recommend] impl<T: StepMethod<H>> __sagaflow_confirm_is_a_step for T {}
//     struct Check(IsAStep<Airline>);                 // spanned at `confirm`
// since `StepMethod`'s own message cannot name the method (only its hash). The
// uses of the step type that follow still fail on their own.

/// The checks that each step method of a saga is one (see above); none for a
/// generic saga, whose receiver types a free item cannot name.
pub(super) fn checks(steps: &[&StepCall], generic: bool) -> TokenStream {
    if generic {
        return TokenStream::new();
    }
    let mut out = TokenStream::new();
    for step in steps {
        let Some(method) = &step.method else { continue };
        let ty = &method.receiver_ty;
        let hash = method.hash;
        let name = &method.name;
        let short = name.rsplit("::").next().unwrap_or(name);
        let ty_name = name.rsplit_once("::").map(|(t, _)| t).unwrap_or(name);
        let message = format!(
            "`{short}` is not a `#[step]` method of `{ty_name}`: mark it `#[step(..)]` (with its kind, such as `read_only` or `compensate = Self::<method>`) inside an `impl {ty_name}` block marked `#[sagaflow::steps]`"
        );
        let span = step.path.span();
        out.extend(quote_spanned! {span=>
            #[allow(dead_code)]
            const _: () = {
                #[diagnostic::on_unimplemented(
                    message = #message,
                    label = "not a `#[step]` method",
                    note = "a saga awaits only steps: a method is one when its `impl` block is marked `#[sagaflow::steps]` and the method `#[step(..)]`"
                )]
                trait IsAStepMethod {}
                #[diagnostic::do_not_recommend]
                impl<T: ?::core::marker::Sized + ::sagaflow::__private::StepMethod<#hash>> IsAStepMethod for T {}
                struct IsAStep<T: ?::core::marker::Sized + IsAStepMethod>(::core::marker::PhantomData<T>);
                // A field's type is checked with the items, before the bodies
                // that use the step: this error comes first.
                struct Check(IsAStep<#ty>);
            };
        });
    }
    out
}
