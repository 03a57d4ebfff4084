use memo::cached;

#[derive(Clone, Hash, PartialEq, Eq)]
struct Id(u32);

#[cached(store = redis)]
async fn f(id: Id) -> u32 {
    id.0
}

fn main() {}
