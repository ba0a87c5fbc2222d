//! The checks that `#[sagaflow::steps]` makes and a free `#[step]` does not:
//! the `impl` block itself, each step method's receiver, and the compensation,
//! confirm and cancel it names, which must be methods of the same `impl`.

use proc_macro2::TokenStream;
use syn::{FnArg, ImplItemFn, ItemFn, Type};

use crate::attr::{Kind, StepAttr};
use crate::ctxt::Ctxt;

/// Reports what `#[sagaflow::steps]` cannot take, so that every error shows at
/// once: options of its own, a trait's `impl`, an `impl` of a trait object.
pub(super) fn check_impl(cx: &Ctxt, args: &TokenStream, imp: &syn::ItemImpl) {
    if !args.is_empty() {
        cx.error_spanned_by(
            args,
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
}

/// Whether the method takes `&self`, the only receiver a saga can call it with.
pub(super) fn check_receiver(cx: &Ctxt, method: &ImplItemFn) -> bool {
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
pub(super) fn compensation_method(
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
pub(super) fn tcc_methods(
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
pub(super) fn without_receiver(method: &ImplItemFn) -> ItemFn {
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
