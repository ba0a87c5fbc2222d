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

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{FnArg, ImplItem, ImplItemFn, ItemFn, ReturnType, Type};

use crate::attr::{Kind, StepAttr, parse_step_attr};
use crate::compensation::Role;
use crate::ctxt::Ctxt;
use crate::step::{info_tokens, step_doc, step_kind, validate_options, validate_signature};

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
    if !args.is_empty() {
        cx.error_spanned_by(
            &args,
            "`#[sagaflow::steps]` takes no options: write them on each method's `#[step(..)]`",
        );
    }
    if let Some((_, path, _)) = &imp.trait_ {
        cx.error_spanned_by(
            path,
            "`#[sagaflow::steps]` goes on an inherent `impl` block (`impl Bank { .. }`), not on a trait's impl: a saga calls a step method by the type's own name; declare the steps in an inherent `impl`, whose methods may call the trait's",
        );
    }
    if let Type::TraitObject(object) = &*imp.self_ty {
        cx.error_spanned_by(
            object,
            "`#[sagaflow::steps]` goes on the `impl` of a type a saga's resource can have, such as `impl Bank`; a step method on `dyn Trait` is not supported: wrap the trait object in a struct (`struct Payer(Box<dyn Payments>)`) and declare the steps in `impl Payer`",
        );
    }
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

/// Whether the method takes `&self`, the only receiver a saga can call it with.
fn check_receiver(cx: &Ctxt, method: &ImplItemFn) -> bool {
    let Some(receiver) = method.sig.receiver() else {
        cx.error_spanned_by(
            &method.sig.ident,
            format!(
                "a step method takes `&self`, the saga resource it is called on, as in `async fn {}(&self, ..)`; a function without `self` can be a free `#[step]` outside the `impl`",
                method.sig.ident
            ),
        );
        return false;
    };
    match &*receiver.ty {
        Type::Reference(r) if r.mutability.is_some() => {
            cx.error_spanned_by(
                receiver,
                "a step method cannot take `&mut self`: the saga calls it on a shared resource (`bank: &Bank`), again for each retry and for its compensation; take `&self` and use interior mutability (such as a `Mutex`) for what it changes",
            );
            false
        }
        Type::Reference(r) if matches!(&*r.elem, Type::Path(p) if p.path.is_ident("Self")) => true,
        _ => {
            cx.error_spanned_by(
                receiver,
                "a step method takes `&self`: the saga calls it on a resource it borrows (`bank: &Bank`), again for each retry and for its compensation, so it cannot take `self` by value or in a box",
            );
            false
        }
    }
}

/// The compensation's method name, if the kind is well formed: a compensation
/// must be a method of the same `impl` (`Self::refund` or `refund`). `Some(None)`
/// for a kind without one.
fn compensation_method(
    cx: &Ctxt,
    attr: &StepAttr,
    methods: &[String],
) -> Option<Option<syn::Ident>> {
    let Some((Kind::Compensate(path), _)) = &attr.kind else {
        return Some(None);
    };
    same_impl_method(
        cx,
        path,
        methods,
        "compensate",
        "compensation",
        "&<its output>",
    )
}

/// A TCC step method's confirm and cancel, methods of the same `impl` too.
/// `Some(None)` for another kind.
fn tcc_methods(
    cx: &Ctxt,
    attr: &StepAttr,
    methods: &[String],
) -> Option<Option<(syn::Ident, syn::Ident)>> {
    let Some((Kind::Tcc { confirm, cancel }, _)) = &attr.kind else {
        return Some(None);
    };
    let confirm = same_impl_method(cx, confirm, methods, "confirm", "confirm", "&<its output>");
    let cancel = same_impl_method(
        cx,
        cancel,
        methods,
        "cancel",
        "cancel",
        "Option<&<its output>>",
    );
    Some(Some((confirm??, cancel??)))
}

/// The method of the same `impl` that `path` names (`Self::refund` or `refund`),
/// or an error that lists them.
fn same_impl_method(
    cx: &Ctxt,
    path: &syn::Path,
    methods: &[String],
    key: &str,
    what: &str,
    output: &str,
) -> Option<Option<syn::Ident>> {
    let segments: Vec<_> = path.segments.iter().collect();
    let name = match segments.as_slice() {
        [only] if path.leading_colon.is_none() => Some(&only.ident),
        [first, last] if path.leading_colon.is_none() && first.ident == "Self" => Some(&last.ident),
        _ => None,
    };
    match name {
        Some(name) if methods.contains(&name.to_string()) => Some(Some(name.clone())),
        _ => {
            let list = methods
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ");
            cx.error_spanned_by(
                path,
                format!(
                    "a step method's {what} is a method of the same `impl`, called with the same receiver: write `{key} = Self::<method>` naming one of its methods ({list}), and declare it as `async fn <method>(&self, <the step's parameters>, {output})`"
                ),
            );
            None
        }
    }
}

/// The method as a function without its receiver, for the checks free steps share.
fn without_receiver(method: &ImplItemFn) -> ItemFn {
    let mut sig = method.sig.clone();
    sig.inputs = sig
        .inputs
        .into_iter()
        .filter(|input| matches!(input, FnArg::Typed(_)))
        .collect();
    ItemFn {
        attrs: Vec::new(),
        vis: method.vis.clone(),
        sig,
        block: Box::new(method.block.clone()),
    }
}

/// The step type, its `Step` impl and the receiver's `StepMethod` impl.
fn step_items(
    imp: &ImplHeader,
    method: &ImplItemFn,
    attr: &StepAttr,
    compensation: Option<syn::Ident>,
    tcc: Option<(syn::Ident, syn::Ident)>,
) -> TokenStream {
    let (sig, vis) = (&method.sig, &method.vis);
    let ident = &sig.ident;
    let self_ty = &imp.self_ty;
    let name = format!(
        "{}::{}",
        type_name(self_ty),
        ident.to_string().trim_start_matches("r#")
    );
    let kind = step_kind(attr);
    let info = info_tokens(&name, &kind, attr);
    let tcc_const = crate::step::tcc_const(tcc.is_some());
    let limit = crate::step::limit_type(attr);
    let hash = method_hash(&ident.to_string());
    let step_ident = format_ident!(
        "__sagaflow_step_{}",
        ident.to_string().trim_start_matches("r#")
    );
    let (impl_generics, ty_generics, where_clause) = imp.generics.split_for_impl();
    let ReturnType::Type(_, ret) = &sig.output else {
        return TokenStream::new();
    };
    let ret_span = ret.span();
    let output_ty = quote_spanned!(ret_span=> <#ret as ::sagaflow::__private::StepResult>::Ok);
    let error_ty = quote_spanned!(ret_span=> <#ret as ::sagaflow::__private::StepResult>::Err);
    let lifetime = syn::Lifetime::new("'__sagaflow_a", Span::call_site());
    let method_lifetimes: Vec<String> = sig
        .generics
        .lifetimes()
        .map(|l| l.lifetime.ident.to_string())
        .collect();
    let mut arg_tys = Vec::new();
    let mut arg_names = Vec::new();
    for (i, input) in sig.inputs.iter().filter_map(typed).enumerate() {
        let mut ty = (*input.ty).clone();
        NameLifetimes {
            to: &lifetime,
            method: &method_lifetimes,
        }
        .visit_type_mut(&mut ty);
        arg_tys.push(ty);
        arg_names.push(format_ident!("__sagaflow_arg{}", i));
    }
    let receiver = || Some((quote!(&Self), format_ident!("__sagaflow_receiver")));
    let nothing = quote! {
        let _ = (__sagaflow_receiver, #(#arg_names,)* __sagaflow_output);
        ::sagaflow::__private::no_compensation().await
    };
    let (confirm_body, cancel_body) = match &tcc {
        Some((confirm, cancel)) => {
            let confirm: syn::Path = syn::parse_quote_spanned!(confirm.span()=> Self::#confirm);
            let cancel: syn::Path = syn::parse_quote_spanned!(cancel.span()=> Self::#cancel);
            (
                crate::compensation::call_as(
                    Role::Confirm,
                    &confirm,
                    sig,
                    receiver(),
                    &arg_names,
                    quote_spanned!(ret_span=> &#output_ty),
                ),
                crate::compensation::call_as(
                    Role::Cancel,
                    &cancel,
                    sig,
                    receiver(),
                    &arg_names,
                    quote_spanned!(ret_span=> ::core::option::Option<&#output_ty>),
                ),
            )
        }
        None => (nothing.clone(), nothing.clone()),
    };
    let compensate_body = match compensation {
        _ if tcc.is_some() => quote! {
            <Self as ::sagaflow::__private::StepMethod<#hash>>::__sagaflow_cancel(
                __sagaflow_receiver,
                (#(#arg_names,)*),
                ::core::option::Option::Some(__sagaflow_output),
            ).await
        },
        Some(comp) => {
            let path: syn::Path = syn::parse_quote_spanned!(comp.span()=> Self::#comp);
            crate::compensation::call_with(
                &path,
                sig,
                Some((quote!(&Self), format_ident!("__sagaflow_receiver"))),
                &arg_names,
                quote_spanned!(ret_span=> &#output_ty),
            )
        }
        None => nothing,
    };
    quote! {
        #[doc(hidden)]
        #vis struct #step_ident #impl_generics (::core::marker::PhantomData<fn(&#self_ty)>) #where_clause;

        #[automatically_derived]
        impl #impl_generics ::sagaflow::Step for #step_ident #ty_generics #where_clause {
            type Output = #output_ty;
            type Error = #error_ty;
            const INFO: ::sagaflow::StepInfo = #info;
            type __SagaflowLimit = #limit;
            #tcc_const
        }

        #[automatically_derived]
        impl #impl_generics ::sagaflow::__private::StepMethod<#hash> for #self_ty #where_clause {
            type Step = #step_ident #ty_generics;
            type Args<#lifetime> = (#(#arg_tys,)*) where Self: #lifetime;
            fn __sagaflow_compensate<#lifetime>(
                &#lifetime self,
                (#(#arg_names,)*): Self::Args<#lifetime>,
                __sagaflow_output: &#lifetime #output_ty,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<(), ::sagaflow::__private::CompensationError>,
            > + #lifetime {
                let __sagaflow_receiver = self;
                async move { #compensate_body }
            }
            fn __sagaflow_confirm<#lifetime>(
                &#lifetime self,
                (#(#arg_names,)*): Self::Args<#lifetime>,
                __sagaflow_output: &#lifetime #output_ty,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<(), ::sagaflow::__private::CompensationError>,
            > + #lifetime {
                let __sagaflow_receiver = self;
                async move { #confirm_body }
            }
            fn __sagaflow_cancel<#lifetime>(
                &#lifetime self,
                (#(#arg_names,)*): Self::Args<#lifetime>,
                __sagaflow_output: ::core::option::Option<&#lifetime #output_ty>,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<(), ::sagaflow::__private::CompensationError>,
            > + #lifetime {
                let __sagaflow_receiver = self;
                async move { #cancel_body }
            }
        }
    }
}

fn typed(input: &FnArg) -> Option<&syn::PatType> {
    match input {
        FnArg::Typed(pt) => Some(pt),
        FnArg::Receiver(_) => None,
    }
}

/// Names `to` every lifetime of a parameter's type that the method leaves out or
/// declares itself, so that the arguments fit `StepMethod::Args<'a>`.
struct NameLifetimes<'l> {
    to: &'l syn::Lifetime,
    method: &'l [String],
}

impl VisitMut for NameLifetimes<'_> {
    fn visit_type_reference_mut(&mut self, r: &mut syn::TypeReference) {
        if r.lifetime.is_none() {
            r.lifetime = Some(self.to.clone());
        }
        syn::visit_mut::visit_type_reference_mut(self, r);
    }

    fn visit_lifetime_mut(&mut self, l: &mut syn::Lifetime) {
        if l.ident == "_" || self.method.contains(&l.ident.to_string()) {
            *l = self.to.clone();
        }
    }
}

/// `Bank::debit`: the step's name in the journal, the graph and the report.
fn step_name(self_ty: &Type, method: &syn::Ident) -> String {
    format!(
        "{}::{}",
        type_name(self_ty),
        method.to_string().trim_start_matches("r#")
    )
}

/// The method's name without `r#`, as the graph callback's selector.
fn method_ident(method: &syn::Ident) -> syn::Ident {
    syn::Ident::new(method.to_string().trim_start_matches("r#"), method.span())
}

// The rustdoc picture of a saga that calls `bank.debit(..)`:
//     #[sagaflow::steps] impl Bank { #[step(..)] async fn debit(..) .. }
// also defines, in the macro namespace under the type's name (so that it goes
// wherever `use` takes the type), a graph callback whose rules are selected by
// the method's name:
//     macro_rules! __sagaflow_steps_Bank_<salt> { (@sagaflow_graph debit [..] [..]) => { .. } }
//     pub use __sagaflow_steps_Bank_<salt> as Bank;
// Hence one `#[sagaflow::steps]` block per type in a module, declared in the
// module of the type.

fn graph_callback(self_ty: &Type, rules: &[TokenStream], salt: u64) -> TokenStream {
    let Type::Path(p) = self_ty else {
        return TokenStream::new();
    };
    let Some(last) = p.path.segments.last() else {
        return TokenStream::new();
    };
    if rules.is_empty() {
        return TokenStream::new();
    }
    let ident = &last.ident;
    let unique = format_ident!("__sagaflow_steps_{}_{:016x}", ident, salt);
    quote! {
        #[doc(hidden)]
        #[macro_export]
        #[allow(non_local_definitions)]
        macro_rules! #unique {
            #(#rules)*
        }
        #[doc(hidden)]
        #[allow(unused_imports)]
        pub use #unique as #ident;
    }
}
