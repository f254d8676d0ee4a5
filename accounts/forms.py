from django import forms
from django.contrib.auth.password_validation import validate_password

from accounts.models import User


class SignupForm(forms.Form):
    username = forms.RegexField(
        r"^[\w.@+-]+\Z", max_length=150, error_messages={"invalid": "Use letters, digits and @ . + - _ only."}
    )
    email = forms.EmailField(max_length=254)
    password = forms.CharField(widget=forms.PasswordInput, max_length=128, strip=False)

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("That username is taken.")
        return username

    def clean(self):
        cleaned = super().clean()
        if "password" in cleaned and "username" in cleaned:
            candidate = User(username=cleaned["username"], email=cleaned.get("email", ""))
            try:
                validate_password(cleaned["password"], user=candidate)
            except forms.ValidationError as error:
                self.add_error("password", error)
        return cleaned
