//! Saga bodies whose names are easy to get wrong when the macro works out which
//! values are still needed: a local that moves an input or an earlier local, a
//! name read only inside a format string or after `..`, and a local named like a
//! later step function.

use sagaflow::{saga, step};

#[derive(Debug)]
pub struct Order {
    pub item: String,
    pub qty: u32,
}

#[step(compensate = unreserve)]
async fn reserve(order: &Order) -> Result<u32, String> {
    Ok(order.qty)
}

async fn unreserve(_order: &Order, _reserved: &u32) -> Result<(), String> {
    Ok(())
}

#[step(read_only)]
async fn look(n: u64) -> Result<u64, String> {
    Ok(n)
}

#[step(read_only)]
async fn measure(text: &str) -> Result<u64, String> {
    Ok(text.len() as u64)
}

#[step(read_only)]
async fn total(n: u64) -> Result<u64, String> {
    Ok(n + 1)
}

// A local moves an input.
#[saga]
async fn build_then_reserve(item: String, qty: u32) -> Result<u32, String> {
    let order: Order = Order { item, qty };
    let reserved = reserve(&order).await?;
    Ok(reserved)
}

// A local moves an earlier local, between steps.
#[saga]
async fn move_between(qty: u64) -> Result<u32, String> {
    let n = look(qty).await?;
    let label: String = format!("x{n}");
    let order: Order = Order {
        item: label,
        qty: n as u32,
    };
    let reserved = reserve(&order).await?;
    Ok(reserved)
}

// Inputs read only by a format string, in a local and in the final `Ok`.
#[saga]
async fn captured(item: String, note: String, n: u64) -> Result<String, String> {
    let seen = look(n).await?;
    let label: String = format!("{item}:{seen}");
    Ok(format!("{label}/{note}"))
}

// An input read only after `..`.
#[saga]
async fn ranged(text: String, prefix: String) -> Result<u64, String> {
    let n = measure(&text).await?;
    let head: String = text[..prefix.len()].to_owned();
    Ok(n + head.len() as u64)
}

// A local named like a step that a later line calls.
#[saga]
async fn named_like_a_step(qty: u64) -> Result<u64, String> {
    let n = look(qty).await?;
    let total: u64 = n * 2;
    let bump: u64 = total + 1;
    let t = total(bump).await?;
    Ok(t)
}

pub struct Desk {
    pub name: String,
}

// Locals that borrow, but not from anything the saga holds: from a resource,
// and a `&'static str` chosen by a held value.
#[saga]
async fn borrowing_locals(desk: &Desk, vip: bool, n: u64) -> Result<u64, String> {
    let name: &str = &desk.name;
    let tier: &str = if vip { "gold" } else { "plain" };
    let seen = look(n + name.len() as u64 + tier.len() as u64).await?;
    Ok(seen)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(build_then_reserve("lamp".into(), 3).await.unwrap(), 3);
        assert_eq!(move_between(4).await.unwrap(), 4);
        assert_eq!(
            captured("lamp".into(), "gift".into(), 1).await.unwrap(),
            "lamp:1/gift"
        );
        assert_eq!(ranged("abcdef".into(), "ab".into()).await.unwrap(), 8);
        assert_eq!(named_like_a_step(1).await.unwrap(), 4);
        let desk = Desk {
            name: "front".into(),
        };
        assert_eq!(borrowing_locals(&desk, true, 1).await.unwrap(), 10);
    });
}
