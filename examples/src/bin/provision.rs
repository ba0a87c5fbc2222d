//! Provisions two machines with the `provision` saga and prints a summary of
//! each run: one that succeeds after the cloud API fails twice and the network
//! stalls once, and one where the network is out of addresses for good, so the
//! VM is deleted and the user removed.
//!
//! Run it with `cargo run -p sagaflow-examples --bin provision`.

use sagaflow::Runner;
use sagaflow_examples::provision::{Cloud, Directory, Network, ProvisionSaga, Request, Summary};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    println!("The saga, as declared:\n{}\n", ProvisionSaga::graph());
    let runner = Runner::new().with_hooks(Summary);

    println!("== Run 1: flaky cloud (2 failures), network stalls once ==");
    let directory = Directory::new();
    let cloud = Cloud::new().failing_creates(2);
    let network = Network::with_addresses(8).stalling(1);
    let saga = ProvisionSaga::new(&directory, &cloud, &network, Request::new("grace", "small"));
    match runner.run(saga).await {
        Ok(machine) => println!("Provisioned: {machine}"),
        Err(err) => println!("Not provisioned: {err}"),
    }
    println!(
        "Afterwards: {} user(s), {} VM(s), {} address(es) in use after {} assignment call(s).\n",
        directory.users().len(),
        cloud.vms().len(),
        network.assigned().len(),
        network.calls(),
    );

    println!("== Run 2: the network is out of addresses ==");
    let directory = Directory::new();
    let cloud = Cloud::new();
    let network = Network::exhausted();
    let saga = ProvisionSaga::new(&directory, &cloud, &network, Request::new("linus", "large"));
    match runner.run(saga).await {
        Ok(machine) => println!("Provisioned: {machine}"),
        Err(err) => {
            println!("Not provisioned: {err}");
            println!("Undone, in this order: {:?}", err.undone());
        }
    }
    println!(
        "Afterwards: {} user(s), {} VM(s); deleted {:?}, removed {:?}.",
        directory.users().len(),
        cloud.vms().len(),
        cloud
            .deleted()
            .iter()
            .map(|vm| vm.id.as_str())
            .collect::<Vec<_>>(),
        directory
            .removed()
            .iter()
            .map(|u| u.name.as_str())
            .collect::<Vec<_>>(),
    );
}
