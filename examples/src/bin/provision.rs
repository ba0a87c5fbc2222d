//! Provisions three machines with the `provision` saga and prints a summary of
//! each run: one that succeeds after the cloud API fails twice and the network
//! stalls once; one where the network is out of addresses for good, so the VM is
//! deleted and the user removed; and one whose machine never answers at its
//! address, so the address is released too.
//!
//! Run it with `cargo run -p sagaflow-examples --bin provision`.

use sagaflow::Runner;
use sagaflow_examples::provision::{Cloud, Directory, Network, ProvisionSaga, Request, Summary};
use sagaflow_examples::words::{in_order, listed};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    println!("The saga, as declared:\n{}\n", ProvisionSaga::graph());
    let runner = Runner::new().with_hooks(Summary);
    let provision = async |directory: &Directory, cloud: &Cloud, network: &Network, user: &str| {
        let saga = ProvisionSaga::new(directory, cloud, network, Request::new(user, "small"));
        match runner.run(saga).await {
            Ok(machine) => println!("Provisioned: {machine}"),
            Err(err) => {
                println!("Not provisioned: {err}");
                println!("Undone, in this order: {}", in_order(err.undone()));
            }
        }
    };
    // What a failed run left behind.
    let leftovers = |directory: &Directory, cloud: &Cloud, network: &Network| {
        let deleted: Vec<String> = cloud.deleted().into_iter().map(|vm| vm.id).collect();
        let removed: Vec<String> = directory.removed().into_iter().map(|u| u.name).collect();
        println!(
            "Afterwards: {} user(s), {} VM(s), {} address(es) in use; VMs deleted: {}; users removed: {}.\n",
            directory.users().len(),
            cloud.vms().len(),
            network.assigned().len(),
            listed(&deleted),
            listed(&removed),
        );
    };

    println!("== Run 1: flaky cloud (2 failures), network stalls once ==");
    let directory = Directory::new();
    let cloud = Cloud::new().failing_creates(2);
    let network = Network::with_addresses(8).stalling(1);
    provision(&directory, &cloud, &network, "grace").await;
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
    provision(&directory, &cloud, &network, "linus").await;
    leftovers(&directory, &cloud, &network);

    println!("== Run 3: the machine never answers at its address ==");
    let directory = Directory::new();
    let cloud = Cloud::new();
    let network = Network::with_addresses(8).dropping_pings();
    provision(&directory, &cloud, &network, "barbara").await;
    leftovers(&directory, &cloud, &network);
}
