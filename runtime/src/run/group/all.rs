//! Polling a group's members together: the future the generated code awaits
//! for a `sagaflow::join!`, which owns the members.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use super::Joinable;

/// The members of a group, polled together until every one has finished,
/// then taken: its output is theirs, in order. Every member is polled at
/// every wake (`&`, not `&&`), as a member that fails for good wakes the task
/// so that a sibling in its backoff sees it.
///
/// It owns the members, rather than borrowing them pinned: awaited, it is a
/// field of the saga's future, so its members are at known places in the
/// saga's state, where pinned borrows kept across the await were pointers
/// loaded back at every use. A type of its own rather than a `poll_fn`
/// closure, so that its poll can be marked to be inlined into the saga's.
#[doc(hidden)]
pub struct JoinAll<T>(pub T);

macro_rules! join_all {
    ($($member:ident),+) => {
        impl<$($member: Joinable),+> Future for JoinAll<($($member,)+)> {
            type Output = ($($member::Output,)+);

            #[inline(always)]
            #[allow(non_snake_case)]
            fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
                // SAFETY: the members are structurally pinned: polled and
                // taken in place, never moved out (`JoinAll` has no `Unpin`
                // impl of its own).
                let ($($member,)+) = unsafe { &mut self.get_unchecked_mut().0 };
                let mut done = true;
                // SAFETY: as above.
                $(done &= unsafe { Pin::new_unchecked(&mut *$member) }.poll_done(cx);)+
                if !done {
                    return Poll::Pending;
                }
                // SAFETY: as above.
                Poll::Ready(($(unsafe { Pin::new_unchecked($member) }.take(),)+))
            }
        }
    };
}

join_all!(A, B);
join_all!(A, B, C);
join_all!(A, B, C, D);
join_all!(A, B, C, D, E);
join_all!(A, B, C, D, E, F);
join_all!(A, B, C, D, E, F, G);
join_all!(A, B, C, D, E, F, G, H);
join_all!(A, B, C, D, E, F, G, H, I);
join_all!(A, B, C, D, E, F, G, H, I, J);
join_all!(A, B, C, D, E, F, G, H, I, J, K);
join_all!(A, B, C, D, E, F, G, H, I, J, K, L);
