"""`{% digested %}...{% enddigested %}`: marks a region a stream re-sends with a digest of
its HTML, so the page does not replace it with the same HTML (static/streams.js).

A live region (the profile page's pods, the status page's table) is rendered with the page
and again by its stream on every (re)connect: the stream cannot know what the page shows,
so it sends the region. Swapping in identical HTML drops a click in progress (the element
under the pointer is replaced between press and release), the keyboard focus and a text
selection. The page and the stream render the region through the same partial, so equal
content gives an equal digest, and the browser skips that swap.
"""

import hashlib
import re

from django import template

register = template.Library()

_FIRST_TAG = re.compile(r"<[A-Za-z][\w-]*")


class DigestedNode(template.Node):
    def __init__(self, nodelist):
        self.nodelist = nodelist

    def render(self, context):
        html = self.nodelist.render(context).strip()
        first = _FIRST_TAG.match(html)
        if first is None:  # not one element: nothing to mark
            return html
        digest = hashlib.blake2b(html.encode(), digest_size=12).hexdigest()
        return f'{html[: first.end()]} data-digest="{digest}"{html[first.end() :]}'


@register.tag
def digested(parser, token):
    """The enclosed element (it must come first) gets `data-digest`: a digest of the
    enclosed HTML as rendered."""
    if len(token.split_contents()) != 1:
        raise template.TemplateSyntaxError("digested takes no arguments")
    nodelist = parser.parse(("enddigested",))
    parser.delete_first_token()
    return DigestedNode(nodelist)
