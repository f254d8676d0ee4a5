from django.contrib import messages
from django.http import HttpResponseRedirect

from config.exceptions import DomainError


class DomainErrorsAsMessagesMixin:
    """Show a service's refusal (stale version, too little stock ...) as an admin error message.

    The admin's change form calls services from `save_model`, after form validation; what they
    refuse there comes back to the same page with the reason instead of a server error.
    """

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as error:
            self.message_user(request, f"Not saved: {error}", messages.ERROR)
            return HttpResponseRedirect(request.path)
