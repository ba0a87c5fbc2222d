//! Parse and expand, inline steps: `sagaflow::inline!(name, kind, async { .. })?`.
//!
//! ```text
//! let hold: Hold = sagaflow::inline!(hold_seat, compensate = async |hold| seats.release(hold).await,
//!                                    async { seats.hold(&trip).await })?;
//! ```
//! is read as a step call whose path is a step type `#[saga]` declares itself,
//! and whose "arguments" are the saga names the body and the compensation read
//! (so that the layout keeps them):
//! ```text
//! struct __sagaflow_inline_book_hold_seat;  impl Step { Output = Hold; Error = <saga's E>; INFO = "hold_seat" .. }
//! forward:  || { let seats = &seats; let trip = &trip; async move { seats.hold(&trip).await } }
//! backward: || { let seats = &seats; let __out = &hold; async move { let hold = __out;
//!                compensation_result(seats.release(hold).await) } }
//! ```
//! The body is evaluated again for each attempt, so it sees each saga name by
//! reference, as a step's arguments must be re-evaluable. Its output's type is
//! the one written on the `let`: the saga's types must be named, and an async
//! block's cannot be.

use std::collections::HashSet;

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Expr, Ident, Token, Type};

use super::analyse::names_used;
use super::ast::StepCall;
use super::expand::Gen;
use crate::attr::{StepAttr, parse_step_attr};
use crate::ctxt::Ctxt;
use crate::step::{info_tokens, step_kind};

/// What an inline step adds to [`StepCall`].
pub(super) struct Inline {
    pub(super) name: Ident,
    pub(super) attr: StepAttr,
    /// The `async { .. }` block.
    pub(super) body: syn::ExprAsync,
    /// The compensation's parameter and body.
    pub(super) compensation: Option<(syn::Pat, Expr)>,
    /// The type on the `let`, or `()`.
    pub(super) output_ty: Type,
    /// The saga names the body reads, and those the compensation reads.
    pub(super) body_names: Vec<Ident>,
    pub(super) compensation_names: Vec<Ident>,
}

/// Whether `m` is a call of `sagaflow::inline!` (or `inline!`).
pub(super) fn is_inline(m: &syn::ExprMacro) -> bool {
    let segments: Vec<String> = m
        .mac
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    matches!(
        segments
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["inline"] | ["sagaflow", "inline"]
    )
}

/// Reads `sagaflow::inline!(..)` into the step call it stands for; `saga_fn`
/// names the generated step type; `known` are the saga names bound so far.
pub(super) fn read(
    cx: &Ctxt,
    m: &syn::ExprMacro,
    binding_ty: Option<&Type>,
    question: Token![?],
    saga_fn: &Ident,
    known: &HashSet<String>,
) -> Option<StepCall> {
    let Parsed {
        name,
        body,
        mut options,
        compensation,
    } = match parse_args.parse2(m.mac.tokens.clone()) {
        Ok(parsed) => parsed,
        Err(e) => {
            cx.push(e);
            return None;
        }
    };
    let compensation = match compensation {
        None => None,
        Some(c) => Some(read_compensation(cx, c, &name, &mut options)?),
    };
    let attr = read_kind(cx, &name, options)?;
    let output_ty = match binding_ty {
        Some(ty) => ty.clone(),
        None => syn::parse_quote!(()),
    };
    let (body_names, compensation_names) = names_read(&body, compensation.as_ref(), known);
    Some(step_call(
        saga_fn,
        question,
        Inline {
            name,
            attr,
            body,
            compensation,
            output_ty,
            body_names,
            compensation_names,
        },
    ))
}

/// The macro's arguments as written, before any is checked.
struct Parsed {
    name: Ident,
    body: syn::ExprAsync,
    /// The options other than `compensate`, as `#[step(..)]` would take them.
    options: TokenStream,
    compensation: Option<syn::ExprClosure>,
}

/// `name, option, .., async { .. }`, where `compensate = ..` is a closure and
/// not a path, so `#[step]`'s attribute parser cannot read it.
fn parse_args(input: ParseStream) -> syn::Result<Parsed> {
    let mut options = TokenStream::new();
    let mut compensation: Option<syn::ExprClosure> = None;
    let name: Ident = input.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            "an inline step starts with its name, its identity in the journal, the graph and the report: `sagaflow::inline!(log_booking, read_only, async { .. })`",
        )
    })?;
    input.parse::<Token![,]>()?;
    loop {
        if input.peek(Token![async]) && !input.peek2(Token![|]) {
            let body: syn::ExprAsync = input.parse()?;
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
            if !input.is_empty() {
                return Err(
                    input.error("the `async { .. }` body comes last in `sagaflow::inline!`")
                );
            }
            return Ok(Parsed {
                name,
                body,
                options,
                compensation,
            });
        }
        if input.is_empty() {
            return Err(input.error(
                "an inline step ends with its body, an `async { .. }` block: `sagaflow::inline!(name, read_only, async { .. })`",
            ));
        }
        if input.peek(Ident)
            && input.peek2(Token![=])
            && input.fork().parse::<Ident>()? == "compensate"
        {
            input.parse::<Ident>()?;
            input.parse::<Token![=]>()?;
            let closure: syn::ExprClosure = input.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "an inline step's compensation is an async closure over a reference to its output: `compensate = async |hold| seats.release(hold).await`",
                )
            })?;
            compensation = Some(closure);
        } else {
            let meta: syn::Meta = input.parse()?;
            options.extend(quote!(#meta,));
        }
        input.parse::<Token![,]>()?;
    }
}

/// The compensation's parameter and body; `options` gets a `compensate = ..`
/// so that the step's kind is read as `#[step]`'s would be.
fn read_compensation(
    cx: &Ctxt,
    c: syn::ExprClosure,
    name: &Ident,
    options: &mut TokenStream,
) -> Option<(syn::Pat, Expr)> {
    if c.asyncness.is_none() || c.inputs.len() != 1 {
        cx.error_spanned_by(
            &c,
            "an inline step's compensation is an async closure of one parameter, a reference to the step's output: `compensate = async |hold| seats.release(hold).await`",
        );
        return None;
    }
    let undo = format_ident!("undo_{}", name);
    options.extend(quote!(compensate = #undo,));
    Some((c.inputs[0].clone(), (*c.body).clone()))
}

/// The step's options, or `None` once the kinds an inline step cannot have
/// are reported.
fn read_kind(cx: &Ctxt, name: &Ident, options: TokenStream) -> Option<StepAttr> {
    let attr = parse_step_attr(cx, options);
    if let Some((crate::attr::Kind::Tcc { .. }, span)) = &attr.kind {
        cx.error_at(
            *span,
            "an inline step cannot be try-confirm-cancel: its confirm and cancel need the try's arguments and output; declare the try as an `async fn` marked `#[step(tcc(confirm = <fn>, cancel = <fn>))]` and call it",
        );
        return None;
    }
    if !attr.kind_written {
        cx.error_spanned_by(
            name,
            "an inline step must say what undoes it when a later step fails: add `compensate = async |output| ..`, or mark it `read_only`, `pivot` or `retriable`",
        );
        return None;
    }
    Some(attr)
}

/// The saga names the body reads (with those the compensation reads, which the
/// layout must keep too), and those the compensation reads.
fn names_read(
    body: &syn::ExprAsync,
    compensation: Option<&(syn::Pat, Expr)>,
    known: &HashSet<String>,
) -> (Vec<Ident>, Vec<Ident>) {
    let mut body_names: Vec<Ident> = sorted(names_used(&body.block, known));
    let compensation_names: Vec<Ident> = match compensation {
        Some((pat, expr)) => {
            let mut names = names_used(expr, known);
            for bound in names_used(pat, known) {
                names.remove(&bound);
            }
            sorted(names)
        }
        None => Vec::new(),
    };
    for n in &compensation_names {
        if !body_names.contains(n) {
            body_names.push(n.clone());
        }
    }
    (body_names, compensation_names)
}

/// The step call the inline step stands for: a call of its generated type
/// with the names it reads as arguments, so that the layout keeps them.
fn step_call(saga_fn: &Ident, question: Token![?], inline: Inline) -> StepCall {
    let name = &inline.name;
    let type_ident = format_ident!(
        "__sagaflow_inline_{}_{}",
        saga_fn.to_string().trim_start_matches("r#"),
        name
    );
    let path: syn::Path = syn::parse_quote_spanned!(name.span()=> #type_ident);
    let args = inline
        .body_names
        .iter()
        .map(|n| -> Expr { syn::parse_quote!(#n) })
        .collect();
    let call = syn::ExprCall {
        attrs: Vec::new(),
        func: Box::new(syn::parse_quote!(#type_ident)),
        paren_token: Default::default(),
        args,
    };
    StepCall {
        binding: format_ident!("__sagaflow_unset"),
        named_by_user: false,
        binding_ty: None,
        path,
        call,
        question,
        method: None,
        inline: Some(Box::new(inline)),
    }
}

fn sorted(names: HashSet<String>) -> Vec<Ident> {
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort();
    names
        .into_iter()
        .map(|n| Ident::new(&n, proc_macro2::Span::call_site()))
        .collect()
}

/// The step types of a saga's inline steps, beside the saga.
pub(super) fn items(g: &Gen<'_>) -> TokenStream {
    let vis = &g.saga.vis;
    let error_ty = &g.saga.error_ty;
    let mut out = TokenStream::new();
    for step in &g.an.steps {
        let Some(inline) = &step.inline else { continue };
        let path = &step.path;
        let output_ty = &inline.output_ty;
        let kind = step_kind(&inline.attr);
        let info = info_tokens(&inline.name.to_string(), &kind, &inline.attr);
        out.extend(crate::step::hidden_step_type(
            vis,
            path.get_ident().unwrap_or(&inline.name),
            &quote!(#output_ty),
            &quote!(#error_ty),
            &info,
            &crate::step::limit_type(&inline.attr),
            quote!(),
        ));
    }
    out
}

/// `let trip = &trip;` for each name.
fn by_reference(names: &[Ident]) -> TokenStream {
    quote!(#(#[allow(unused_variables)] let #names = &#names;)*)
}

/// The forward call's closure.
pub(super) fn forward_closure(inline: &Inline) -> TokenStream {
    let refs = by_reference(&inline.body_names);
    let block = &inline.body.block;
    let span = inline.body.span();
    quote_spanned! {span=>
        || { #refs async move #block }
    }
}

/// The compensation's closure, reading the output named `output`.
pub(super) fn compensate_closure(inline: &Inline, output: &Ident) -> TokenStream {
    match &inline.compensation {
        Some((pat, body)) => {
            let refs = by_reference(&inline.compensation_names);
            let span = body.span();
            let pat = pat.to_token_stream();
            quote_spanned! {span=>
                || {
                    #refs
                    let __sagaflow_output = &#output;
                    async move {
                        let #pat = __sagaflow_output;
                        ::sagaflow::__private::compensation_result(#body)
                    }
                }
            }
        }
        None => quote! {
            || { let _ = &#output; ::sagaflow::__private::no_compensation() }
        },
    }
}
