//! The fake bank.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde::de::IgnoredAny;

use super::{Cents, Payment, TripError, lock, request_key, with_ledger};
use crate::ledger::{Caller, Ledger};

/// A bank that holds customers' balances and remembers every debit and refund.
///
/// Refunds are idempotent: refunding the same payment twice credits it once, so
/// that a retried compensation cannot pay the customer twice.
///
/// Debits are once per idempotency key: asked again to debit with a key it has
/// already debited for, it answers with the first payment.
/// [`with_ledger`](Bank::with_ledger) makes its effects outlive the process, and
/// the keys it has served with them. A clone shares the accounts.
#[derive(Debug, Default, Clone)]
pub struct Bank {
    state: Arc<Mutex<BankState>>,
    ledger: Option<Arc<Ledger>>,
}

#[derive(Debug, Default)]
struct BankState {
    balances: HashMap<String, Cents>,
    debits: Vec<Payment>,
    refunds: Vec<Payment>,
    refunded: HashSet<String>,
    refusing_refunds: bool,
    refusing_refunds_for: HashSet<String>,
    by_key: HashMap<String, Payment>,
    next: u32,
}

impl BankState {
    fn apply_debit(&mut self, payment: &Payment) {
        let balance = self.balances.entry(payment.customer.clone()).or_default();
        *balance = balance.saturating_sub(payment.amount);
        self.next += 1;
        self.debits.push(payment.clone());
    }

    fn apply_refund(&mut self, payment: &Payment) {
        self.refunded.insert(payment.reference.clone());
        *self.balances.entry(payment.customer.clone()).or_default() += payment.amount;
        self.refunds.push(payment.clone());
    }
}

impl Bank {
    /// A bank with no accounts.
    pub fn new() -> Self {
        Bank::default()
    }

    /// The same bank with an account for `customer` holding `balance`.
    pub fn with_account(self, customer: &str, balance: Cents) -> Self {
        lock(&self.state)
            .balances
            .insert(customer.to_owned(), balance);
        self
    }

    /// The same bank, whose refund service is down: every refund fails with
    /// [`TripError::RefundsUnavailable`].
    pub fn refusing_refunds(self) -> Self {
        lock(&self.state).refusing_refunds = true;
        self
    }

    /// The same bank, refusing every refund to `customer` with
    /// [`TripError::RefundsUnavailable`].
    pub fn refusing_refunds_for(self, customer: &str) -> Self {
        lock(&self.state)
            .refusing_refunds_for
            .insert(customer.to_owned());
        self
    }

    /// The same bank, writing what it does to `ledger`, after applying what the
    /// ledger says it did before (debits and refunds) to the accounts. Call it
    /// after [`with_account`](Bank::with_account).
    pub fn with_ledger(mut self, ledger: Arc<Ledger>) -> Self {
        {
            let mut state = lock(&self.state);
            for line in ledger.lines() {
                match line.what.as_str() {
                    "debit" => {
                        if let Ok(payment) = line.decode::<Payment>() {
                            state.apply_debit(&payment);
                        }
                    }
                    "refund" => {
                        if let Ok(payment) = line.decode::<Payment>() {
                            state.apply_refund(&payment);
                        }
                    }
                    _ => {}
                }
            }
        }
        self.ledger = Some(ledger);
        self
    }

    /// What `customer`'s account holds, or `None` if there is no such account.
    pub fn balance(&self, customer: &str) -> Option<Cents> {
        lock(&self.state).balances.get(customer).copied()
    }

    /// Every debit made, in order, refunded or not.
    pub fn debits(&self) -> Vec<Payment> {
        lock(&self.state).debits.clone()
    }

    /// Every refund made, in order.
    pub fn refunds(&self) -> Vec<Payment> {
        lock(&self.state).refunds.clone()
    }

    /// Takes `amount` from `customer`'s account.
    pub fn debit(&self, customer: &str, amount: Cents) -> Result<Payment, TripError> {
        let mut state = lock(&self.state);
        let caller = Caller::current();
        if let Some(earlier) = with_ledger(&self.ledger, |l| l.call("debit", &caller))? {
            return Ok(earlier);
        }
        if let Some(earlier) = request_key(&caller).and_then(|k| state.by_key.get(k)) {
            return Ok(earlier.clone());
        }
        let balance = *state
            .balances
            .get(customer)
            .ok_or_else(|| TripError::UnknownCustomer(customer.to_owned()))?;
        if balance < amount {
            return Err(TripError::InsufficientFunds {
                customer: customer.to_owned(),
                balance,
                needed: amount,
            });
        }
        let payment = Payment {
            reference: format!("PAY-{}", state.next + 1),
            customer: customer.to_owned(),
            amount,
        };
        with_ledger(&self.ledger, |l| {
            l.done("debit", &caller, &payment).map(Some)
        })?;
        state.apply_debit(&payment);
        if let Some(key) = request_key(&caller) {
            state.by_key.insert(key.to_owned(), payment.clone());
        }
        Ok(payment)
    }

    /// Gives `payment` back to its customer; does nothing if it was already refunded.
    pub fn refund(&self, payment: &Payment) -> Result<(), TripError> {
        let mut state = lock(&self.state);
        let caller = Caller::current();
        if with_ledger(&self.ledger, |l| l.call::<IgnoredAny>("refund", &caller))?.is_some() {
            return Ok(());
        }
        if state.refusing_refunds || state.refusing_refunds_for.contains(&payment.customer) {
            return Err(TripError::RefundsUnavailable);
        }
        if state.refunded.contains(&payment.reference) {
            return Ok(());
        }
        with_ledger(&self.ledger, |l| {
            l.done("refund", &caller, payment).map(Some)
        })?;
        state.apply_refund(payment);
        Ok(())
    }
}
