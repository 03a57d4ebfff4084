use memo::cached;

// On a hit the body does not run, so `log.push` would silently not happen.
#[cached]
fn record(log: &mut Vec<u32>, x: u32) -> u32 {
    log.push(x);
    x * 2
}

struct Counter(u32);

impl Counter {
    #[cached]
    fn bump(&mut self) -> u32 {
        self.0 += 1;
        self.0
    }
}

// Intended: the log is left out of the key.
#[cached(key = x)]
fn record_once(log: &mut Vec<u32>, x: u32) -> u32 {
    log.push(x);
    x * 2
}

fn main() {}
