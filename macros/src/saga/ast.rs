//! The saga as a tree, read from the user's function with its tokens and spans.
//!
//! A body is a sequence of [`Node`]s ended by the final `Ok(..)`: steps, locals
//! concurrent groups (`sagaflow::join!`), whose members are steps, and branches
//! (`if`/`match`), whose arms are bodies of their own: the body is a tree.

use syn::{Expr, Ident, Token, Type};

/// A saga parameter: a resource (`&T`) or an owned input.
pub(super) struct Param {
    pub(super) name: Ident,
    /// The type as written, for the function wrapper.
    pub(super) ty: Type,
    /// The type with elided lifetimes named, for the generated types.
    pub(super) state_ty: Type,
}

/// `let binding = path(args).await?;`, `let _ = ..` or a bare `path(args).await?;`.
pub(super) struct StepCall {
    pub(super) binding: Ident,
    /// False for `let _ = ..` and a bare call, whose output gets a generated name.
    pub(super) named_by_user: bool,
    pub(super) binding_ty: Option<Type>,
    pub(super) path: syn::Path,
    pub(super) call: syn::ExprCall,
    pub(super) question: Token![?],
    /// For a step method, `bank.debit(..)`: `path` is its `MethodStep` and
    /// `call` is `<Bank>::debit(bank, ..)`.
    pub(super) method: Option<Box<MethodCall>>,
    /// For `sagaflow::inline!(..)`: `path` is the step type the saga declares,
    /// and `call`'s arguments are the saga names it reads.
    pub(super) inline: Option<Box<super::inline::Inline>>,
}

/// What a step method's call adds to [`StepCall`].
pub(super) struct MethodCall {
    /// `Bank::debit`, the step's name.
    pub(super) name: String,
    /// `Bank`, the receiver's referent type.
    pub(super) receiver_ty: Type,
    /// The method's name hashed, `StepMethod`'s const generic.
    pub(super) hash: u64,
}

impl StepCall {
    /// The step as its messages name it: `book_flight`, `Bank::debit`.
    pub(super) fn shown(&self) -> String {
        if let Some(inline) = &self.inline {
            return inline.name.to_string();
        }
        match &self.method {
            Some(m) => m.name.clone(),
            None => {
                let path = &self.path;
                quote::quote!(#path).to_string().replace(' ', "")
            }
        }
    }
}

/// `let name: ty = expr;`, plain computation between steps.
pub(super) struct Local {
    pub(super) name: Ident,
    pub(super) ty: Type,
    pub(super) expr: Expr,
}

/// `let (a, b) = sagaflow::join!(one(..), two(..))?;` or a bare
/// `sagaflow::join!(..)?;`: 2 to 12 steps run concurrently.
pub(super) struct Group {
    /// The members, in the order written; each with the group's `?`.
    pub(super) members: Vec<StepCall>,
}

/// `if`/`match` over saga data, as a statement or as a `let`'s value: one
/// arm runs, chosen once and recorded, so that recovery takes it again.
pub(super) struct Branch {
    /// The name the `let` binds, if any: each arm's value goes there.
    pub(super) binding: Option<Ident>,
    /// The type of `binding`, as written or as the arms' last step's output.
    pub(super) binding_ty: Option<proc_macro2::TokenStream>,
    /// The choice, as `if`s or as a `match`.
    pub(super) choice: Choice,
    /// The arms, in the order written; an `if` without `else` gets an empty last arm.
    pub(super) arms: Vec<Arm>,
    /// The condition's source text, for the graph: `order.express`, `match order.region`.
    pub(super) label: String,
}

/// How a branch chooses its arm.
pub(super) enum Choice {
    /// `if c0 { .. } else if c1 { .. } else { .. }`: one condition per arm but the `else`.
    If(Vec<Expr>),
    /// `match scrutinee { pat if guard => .., }`.
    Match {
        scrutinee: Expr,
        arms: Vec<(syn::Pat, Option<Expr>)>,
    },
}

/// One arm of a [`Branch`]: a body of its own, and the value it ends with.
pub(super) struct Arm {
    pub(super) nodes: Vec<Node>,
    /// The value of a plain expression the arm ends with; `None` if it ends with
    /// a step call whose output is the branch's value, or yields `()`.
    pub(super) value: Option<Expr>,
    /// The arm as the graph labels it: `true`, `else`, the pattern's text.
    pub(super) label: String,
}

/// One statement of a saga body.
pub(super) enum Node {
    Step(StepCall),
    Local(Local),
    Group(Group),
    Branch(Branch),
}

/// The saga: its signature, read and checked, and its body.
pub(super) struct Saga {
    pub(super) attrs: Vec<syn::Attribute>,
    pub(super) vis: syn::Visibility,
    pub(super) sig: syn::Signature,
    pub(super) type_ident: Ident,
    pub(super) lifetimes: Vec<syn::Lifetime>,
    /// The saga's type parameters, with their bounds.
    pub(super) type_params: Vec<syn::TypeParam>,
    /// Whether a parameter or a local leaves a lifetime out, so that the
    /// generated types need one named for it.
    pub(super) needs_elided: bool,
    /// The name of that lifetime.
    pub(super) elided: syn::Lifetime,
    pub(super) params: Vec<Param>,
    pub(super) output_ty: Type,
    pub(super) error_ty: Type,
    pub(super) body: Vec<Node>,
    /// The body's `sagaflow::send!` statements, in order: sent at the commit.
    pub(super) sends: Vec<super::send::SendStmt>,
    /// The value inside the final `Ok(..)`.
    pub(super) final_expr: Expr,
}
