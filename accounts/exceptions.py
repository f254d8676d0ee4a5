from core.exceptions import DomainError


class UsernameTaken(DomainError):
    code = "username_taken"
    status_code = 400
    default_message = "That username is taken."
