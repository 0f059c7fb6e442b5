"""Profile actions: clone, delete, YAML export and import."""

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from deployments import profile_yaml, selectors
from deployments.forms import CloneForm, ImportForm
from deployments.services.profiles import profile_clone, profile_delete, profile_import
from deployments.spec import SpecError


@require_http_methods(["GET", "POST"])
@permission_required("deployments.add_profile", raise_exception=True)
def profile_clone_view(request, name):
    profile = get_object_or_404(selectors.profile_detail_queryset(), name=name)
    initial = {"name": f"{name}-copy"[:53], "namespace": f"{name}-copy"[:63]}
    form = CloneForm(request.POST if request.method == "POST" else None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            clone = profile_clone(profile=profile, name=form.cleaned_data["name"],
                                  namespace=form.cleaned_data["namespace"], actor=request.user)
        except SpecError as exc:
            for error in exc.errors:
                field = error.path if error.path in form.fields else None
                form.add_error(field, error.message if field else str(error))
        else:
            messages.success(request, f"Profile {profile.name} cloned as {clone.name}.")
            return redirect("deployments:profile_detail", name=clone.name)
    return render(request, "deployments/profile_clone.html", {"profile": profile, "form": form})


@require_http_methods(["GET", "POST"])
@permission_required("deployments.delete_profile", raise_exception=True)
def profile_delete_view(request, name):
    profile = get_object_or_404(selectors.profile_detail_queryset(), name=name)
    if request.method == "POST":
        profile_delete(profile=profile, actor=request.user)
        messages.success(request, f"Profile {name} deleted.")
        return redirect("deployments:profile_list")
    return render(request, "deployments/profile_confirm_delete.html", {"profile": profile})


@require_GET
@permission_required("deployments.view_profile", raise_exception=True)
def profile_export(request, name):
    profile = get_object_or_404(selectors.profile_detail_queryset(), name=name)
    response = HttpResponse(profile_yaml.dump(profile), content_type="application/yaml")
    response["Content-Disposition"] = f'attachment; filename="{profile.name}.yaml"'
    return response


@require_http_methods(["GET", "POST"])
@permission_required(("deployments.add_profile", "deployments.change_profile"),
                     raise_exception=True)
def profile_import_view(request):
    posted = request.method == "POST"
    form = ImportForm(request.POST, request.FILES) if posted else ImportForm()
    errors = []
    if request.method == "POST" and form.is_valid():
        try:
            document = profile_yaml.load(form.cleaned_data["file"].read())
            profile = profile_import(data=document, actor=request.user)
        except SpecError as exc:
            errors = [str(error) for error in exc.errors]
        else:
            messages.success(request, f"Profile {profile.name} imported.")
            return redirect("deployments:profile_detail", name=profile.name)
    context = {"form": form, "errors": errors}
    return render(request, "deployments/profile_import.html", context)
