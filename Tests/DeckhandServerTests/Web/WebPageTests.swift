import Testing

@testable import DeckhandServer

@Suite("WebPage: what the fleet says is shown as text, never as markup")
struct WebPageTests {
  @Test("markup, quotes and ampersands are escaped")
  func escape() {
    #expect(
      WebPage.escape(#"<script>alert("x")</script> & 'y'"#)
        == "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;")
    #expect(WebPage.escape("web-1") == "web-1")
  }

  @Test("a form's fields are read percent-decoded; the first of a name wins")
  func form() {
    let fields = WebUI.form("token=DHTKN-1-a%2Bb&csrf=x+y&csrf=second&empty")
    #expect(fields["token"] == "DHTKN-1-a+b")
    #expect(fields["csrf"] == "x y")
    #expect(fields["empty"] == "")
  }
}
