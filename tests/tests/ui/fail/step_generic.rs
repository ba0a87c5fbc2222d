use sagaflow::step;

#[step(read_only)]
async fn quote<T: ToString>(item: &T) -> Result<String, String> {
    Ok(item.to_string())
}

fn main() {}
