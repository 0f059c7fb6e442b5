from django.shortcuts import render

from deployments.models import Profile


def status(request):
    return render(request, "deployments/status.html", {"profiles": Profile.objects.all()})
