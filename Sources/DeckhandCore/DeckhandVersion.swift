/// The version of this build.
public enum DeckhandVersion {
  public static let current = "0.1.0"
}
