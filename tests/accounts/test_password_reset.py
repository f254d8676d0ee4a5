"""A shopper who forgot the password chooses a new one through the e-mailed link (Django's views)."""

import re

import pytest
from django.core import mail

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_a_shopper_resets_the_password_through_the_emailed_link_once(client):
    user = UserFactory(email="ada@example.com")
    assert "Forgot your password?" in client.get("/accounts/login/").content.decode()

    response = client.post("/accounts/password-reset/", {"email": "ada@example.com"}, follow=True)
    assert "Check your e-mail" in response.content.decode()
    [message] = mail.outbox
    link = re.search(r"http://testserver(/accounts/password-reset/\S+/)", message.body).group(1)

    form = client.get(link, follow=True)
    assert "Choose a new password" in form.content.decode()
    new = "a brand new passphrase"
    done = client.post(form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new}, follow=True)
    assert "Password changed" in done.content.decode()
    assert client.login(username=user.username, password=new)

    assert "This link no longer works" in client.get(link, follow=True).content.decode()


def test_an_unknown_address_gets_the_same_answer_and_no_mail(client):
    response = client.post("/accounts/password-reset/", {"email": "nobody@example.com"}, follow=True)

    assert "Check your e-mail" in response.content.decode()
    assert mail.outbox == []
