//! `#[sagaflow::steps]`: the `#[step]` methods of an inherent `impl` block.
//!
//! ```text
//! #[sagaflow::steps]
//! impl Bank {
//!     #[step(compensate = Self::refund)]
//!     async fn debit(&self, account: &AccountId, amount: u64) -> Result<Debit, E> { .. }
//!     async fn refund(&self, account: &AccountId, amount: u64, debit: &Debit) -> Result<(), E> { .. }
//! }
//! ```
//! becomes
//! ```text
//! impl Bank { async fn debit(..) { .. } async fn refund(..) { .. } }   // as written
//! const _: () = {
//!     pub struct __sagaflow_step_debit(PhantomData<fn(&Bank)>);
//!     impl Step for __sagaflow_step_debit { type Output = Debit; type Error = E; const INFO = "Bank::debit" .. }
//!     impl StepMethod<{fnv1a("debit")}> for Bank {
//!         type Step = __sagaflow_step_debit;
//!         type Args<'a> = (&'a AccountId, u64);
//!         fn __sagaflow_compensate<'a>(&'a self, (a0, a1): Args<'a>, out: &'a Debit) -> impl Future {
//!             async move { compensation_result(Self::refund(self, a0, a1, out).await) }
//!         }
//!     }
//! };
//! ```
//! `#[saga]` sees `bank.debit(..)` and the parameter `bank: &Bank`, so it names
//! the step `MethodStep<Bank, {fnv1a("debit")}>`, through the `StepMethod` impl:
//! a method's name cannot be a type, but its hash can be a const generic. The
//! step's name in the journal, the graph and the report is `Bank::debit`: unique
//! among the steps of a saga, whose resources have one type each.

mod check;
mod graph;
mod items;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::{ImplItem, Type};

use crate::attr::parse_step_attr;
use crate::ctxt::Ctxt;
use crate::step::{step_doc, step_kind, validate_options, validate_signature};

use check::{check_impl, check_receiver, compensation_method, tcc_methods, without_receiver};
use graph::{graph_callback, method_ident, step_name};
use items::step_items;

/// The const generic that names method `name` in `StepMethod`: FNV-1a over its
/// name (a raw identifier without its `r#`).
pub(crate) fn method_hash(name: &str) -> u64 {
    let name = name.strip_prefix("r#").unwrap_or(name);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The name a type goes by in a step's name: `Bank` for `bank::Bank<C>`.
pub(crate) fn type_name(ty: &Type) -> String {
    match ty {
        Type::Path(p) => p
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default(),
        Type::Group(g) => type_name(&g.elem),
        Type::Paren(p) => type_name(&p.elem),
        other => other.to_token_stream().to_string().replace(' ', ""),
    }
}

pub(crate) fn expand(args: TokenStream, item: TokenStream, salt: u64) -> TokenStream {
    let mut imp: syn::ItemImpl = match syn::parse2(item.clone()) {
        Ok(imp) => imp,
        Err(_) => {
            let message = if syn::parse2::<syn::ItemTrait>(item.clone()).is_ok() {
                "`#[sagaflow::steps]` goes on an inherent `impl` block, not on a trait: a trait's methods have no body to run; mark the steps in `impl MyClient { .. }`, or wrap the trait in a struct (`impl<P: Payments> Payer<P> { .. }`)"
            } else {
                "`#[sagaflow::steps]` goes on an `impl` block whose `#[step]` methods are saga steps, as in `#[sagaflow::steps] impl Bank { #[step(read_only)] async fn balance(&self) -> Result<u64, E> { .. } }`"
            };
            let error = syn::Error::new(Span::call_site(), message).to_compile_error();
            return quote!(#error #item);
        }
    };
    let cx = Ctxt::new();
    check_impl(&cx, &args, &imp);
    let methods: Vec<String> = imp
        .items
        .iter()
        .filter_map(|item| match item {
            ImplItem::Fn(f) => Some(f.sig.ident.to_string()),
            _ => None,
        })
        .collect();
    let header = imp_ref(&imp);
    let mut generated = Vec::new();
    let mut graph_rules = Vec::new();
    let mut any_step = false;
    for item in &mut imp.items {
        let ImplItem::Fn(method) = item else { continue };
        let Some(position) = method.attrs.iter().position(is_step_attr) else {
            continue;
        };
        any_step = true;
        let attr = method.attrs.remove(position);
        if let Some(again) = method.attrs.iter().find(|a| is_step_attr(a)) {
            cx.error_spanned_by(
                again,
                "a method takes one `#[step(..)]`: merge the options into one, as in `#[step(compensate = Self::refund, retry = 3)]`",
            );
            method.attrs.retain(|a| !is_step_attr(a));
        }
        let args = match &attr.meta {
            syn::Meta::List(list) => list.tokens.clone(),
            _ => TokenStream::new(),
        };
        let step_attr = parse_step_attr(&cx, args);
        if !step_attr.kind_written {
            cx.error_spanned_by(
                &attr,
                "a step must say what undoes it when a later step fails: add `compensate = Self::<method>`, or mark it `read_only`, `pivot` or `retriable`",
            );
        }
        validate_options(&cx, &step_attr);
        let receiver_ok = check_receiver(&cx, method);
        let compensation = compensation_method(&cx, &step_attr, &methods);
        let tcc = tcc_methods(&cx, &step_attr, &methods);
        let signature_ok = validate_signature(&cx, &without_receiver(method), false);
        if let (true, true, Some(compensation), Some(tcc)) =
            (receiver_ok, signature_ok, compensation, tcc)
        {
            let kind = step_kind(&step_attr);
            let doc = step_doc(&kind, &step_attr);
            method.attrs.push(syn::parse_quote!(#[doc = ""]));
            method.attrs.push(syn::parse_quote!(#[doc = #doc]));
            generated.push(step_items(&header, method, &step_attr, compensation, tcc));
            let name = step_name(&header.self_ty, &method.sig.ident);
            let info = crate::step::info_value(&name, &kind, &step_attr);
            let selector = method_ident(&method.sig.ident);
            graph_rules.push(crate::step::graph_rules(&quote!(#selector), &info));
        }
    }
    if !any_step {
        cx.error_at(
            Span::call_site(),
            "this `impl` has no `#[step]` method: mark the methods that are saga steps with `#[step(..)]`, or remove `#[sagaflow::steps]`",
        );
    }
    let errors = match cx.check() {
        Ok(()) => TokenStream::new(),
        Err(e) => e.to_compile_error(),
    };
    let callback = graph_callback(&header.self_ty, &graph_rules, salt);
    quote! {
        #errors
        #imp
        #callback
        #[allow(non_camel_case_types, unreachable_pub, missing_docs, clippy::needless_lifetimes, clippy::ptr_arg, clippy::trivially_copy_pass_by_ref, unused_qualifications)]
        const _: () = {
            #(#generated)*
        };
    }
}

/// What the generated items read of the `impl` block (it is being edited).
struct ImplHeader {
    generics: syn::Generics,
    self_ty: Type,
}

fn imp_ref(imp: &syn::ItemImpl) -> ImplHeader {
    ImplHeader {
        generics: imp.generics.clone(),
        self_ty: (*imp.self_ty).clone(),
    }
}

fn is_step_attr(attr: &syn::Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "step")
}
