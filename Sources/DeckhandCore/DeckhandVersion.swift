/// The version of this build.
package enum DeckhandVersion {
  package static let current = "0.1.0"
}
