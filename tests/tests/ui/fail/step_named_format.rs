use sagaflow::step;

pub struct Trip;
pub struct Booking;

// A step named like a std macro, in a module that uses that macro.
pub struct Disk;

#[step(retriable)]
async fn format(disk: &Disk) -> Result<(), String> {
    let _ = disk;
    Ok(())
}

pub fn describe(id: u32) -> String {
    format!("disk {id}")
}

fn main() {}
