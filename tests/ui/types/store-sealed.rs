// `Store`'s docs: "The trait is sealed: memo's stores implement it". A store of one's own is
// refused, so the methods between a cache and its store may change in any release.
struct Mine;

impl memo::Store<u32, u32> for Mine {}

fn main() {}
