use memo::cached;

trait Repo {
    fn name(&self, id: u32) -> String;
}

struct Db;

impl Repo for Db {
    #[cached(key = id)]
    fn name(&self, id: u32) -> String {
        format!("user {id}")
    }
}

fn main() {}
